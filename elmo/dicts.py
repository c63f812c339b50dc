"""Nested dicts (JSON documents, params sections): the one flattener and the one deep merge.

* :func:`flatten` — ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: MLflow params (elmo/tracking.py), DVC
  metrics (elmo/dvcrepo.py), a metrics file's numbers (elmo/registry/register.py).
* :func:`deep_merge` — ``over`` merged key by key into ``base``: the pretrain presets
  (elmo/params/presets.py, elmo/params/pretrain.py) and a task's overrides of the shared finetune
  settings (elmo/params/finetune.py).

Imports nothing of the project: elmo/params uses it, so every stage depends on it (dvc.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(d: Mapping[str, Any], prefix: str = "", *, numbers_only: bool = False, sep: str = ".") -> dict[str, Any]:
    """Every leaf of ``d`` by its dotted key (``prefix`` + the keys on its path joined by ``sep``),
    in the document's order. A nested dict is walked, never a leaf itself (an empty one leaves no key).

    ``numbers_only``: only the int and float leaves, as float (bools, strings, lists and None are left out).
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + sep, numbers_only=numbers_only, sep=sep))
        elif not numbers_only:
            out[key] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``over``'s keys, merged recursively where both values are dicts and
    replaced otherwise; ``base``'s key order, then ``over``'s new keys. Neither argument is changed."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

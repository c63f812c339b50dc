"""elmo/dicts.py: the one flattener and the one deep merge (they replaced three flatteners in tracking,
dvcrepo and registry, and three preset/task mergers in elmo/params; the old bodies are kept here as
references, and the new functions must give exactly their results)."""

from __future__ import annotations

import random
from typing import Any

from elmo.dicts import deep_merge, flatten


def test_flatten_dotted_keys_in_order() -> None:
    doc = {"a": {"b": 1, "c": {"d": "x", "e": None}}, "f": [1, 2], "g": {}, "h": True, "i": 2.5}
    assert list(flatten(doc).items()) == [("a.b", 1), ("a.c.d", "x"), ("a.c.e", None), ("f", [1, 2]),
                                         ("h", True), ("i", 2.5)]
    assert flatten(doc, numbers_only=True) == {"a.b": 1.0, "i": 2.5}
    assert isinstance(flatten(doc, numbers_only=True)["a.b"], float)
    assert flatten({"a": {"b": 1}}, "run.", sep="/") == {"run.a/b": 1}
    assert flatten({}) == {}


def test_deep_merge_merges_dicts_replaces_the_rest() -> None:
    base = {"model": {"lstm_dim": 256, "filters": [[1, 2]], "opt": {"lr": 1.0, "eps": 2}}, "n": 1}
    over = {"model": {"lstm_dim": 512, "opt": {"lr": 3.0}, "new": 1}, "n": {"x": 1}, "z": 0}
    out = deep_merge(base, over)
    assert out == {"model": {"lstm_dim": 512, "filters": [[1, 2]], "opt": {"lr": 3.0, "eps": 2}, "new": 1},
                   "n": {"x": 1}, "z": 0}
    assert list(out) == ["model", "n", "z"] and list(out["model"]) == ["lstm_dim", "filters", "opt", "new"]
    assert base["model"]["lstm_dim"] == 256 and "new" not in base["model"]  # arguments unchanged


# ---------------------------------------------------------------- the replaced implementations
def _old_tracking_flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_old_tracking_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _old_flatten_numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_old_flatten_numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def _old_merged(base: dict, over: dict) -> dict:  # presets._merged and pretrain._deep_merge
    out = dict(base)
    for k, v in over.items():
        out[k] = _old_merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _old_finetune_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _old_finetune_merge(base.get(k), v) for k, v in over.items()}}
    return over


def _random_doc(rng: random.Random, depth: int = 0) -> dict:
    leaves = [lambda: rng.randint(-5, 5), lambda: rng.random(), lambda: rng.choice([True, False]),
              lambda: "s", lambda: None, lambda: [1, "a"]]
    doc = {}
    for _ in range(rng.randint(0, 4)):
        key = rng.choice("abcdef")
        doc[key] = _random_doc(rng, depth + 1) if depth < 3 and rng.random() < 0.4 else rng.choice(leaves)()
    return doc


def test_same_results_as_the_replaced_implementations() -> None:
    rng = random.Random(0)
    for _ in range(500):
        a, b = _random_doc(rng), _random_doc(rng)
        assert list(flatten(a).items()) == list(_old_tracking_flatten(a).items())
        assert list(flatten(a, numbers_only=True).items()) == list(_old_flatten_numbers(a).items())
        merged = deep_merge(a, b)
        assert merged == _old_merged(a, b) == _old_finetune_merge(a, b)
        assert repr(merged) == repr(_old_merged(a, b)) == repr(_old_finetune_merge(a, b))  # key order too

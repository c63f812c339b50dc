"""Base class for params sections: strict (unknown keys are errors), immutable; and the one mark
for runtime-only params.

A *runtime-only* param changes how a stage runs (threads, worker processes, where checkpoints go,
whether to resume) but never what it writes. Declare it with :func:`runtime_only` instead of
``Field``; everything else reads the mark through :func:`runtime_only_keys`: the RUNTIME_ONLY
tuples of the sections, pretrain's checkpoint fingerprint, and the tests that keep dvc.yaml's
params lists without them (so changing one never reruns a stage).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RUNTIME_ONLY_MARK = "runtime_only"


def runtime_only(default: Any, **kwargs: Any) -> Any:
    """``Field(default, **kwargs)`` marked as a param that never changes a stage's outputs."""
    return Field(default, json_schema_extra={RUNTIME_ONLY_MARK: True}, **kwargs)


def runtime_only_keys(model: type[BaseModel], prefix: str = "") -> tuple[str, ...]:
    """Dotted keys (relative to ``model``) of the fields marked :func:`runtime_only`, nested
    sections included (``trainer.threads``)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get(RUNTIME_ONLY_MARK):
            keys.append(prefix + name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys.extend(runtime_only_keys(field.annotation, f"{prefix}{name}."))
    return tuple(keys)


class ParamsError(ValueError):
    """A params file is missing, not YAML, or fails validation; the message names file and key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

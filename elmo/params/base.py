"""Base class for params sections: strict (unknown keys are errors), immutable; and the one mark
for runtime-only params.

A *runtime-only* param changes how a stage runs (threads, worker processes, where checkpoints go,
whether to resume) but never what it writes. Declare it with :func:`runtime_only` instead of
``Field``; everything else reads the mark through :func:`runtime_only_keys`: the RUNTIME_ONLY
tuples of the sections, pretrain's checkpoint fingerprint, and the tests that keep dvc.yaml's
params lists without them (so changing one never reruns a stage).

Numbers are numbers: ``true``/``false`` or a quoted string where an int or float is expected is an
error (pydantic would read ``true`` as 1), and so are ``.inf`` and ``.nan``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

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


def _leaves(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaves(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_leaves(a) for a in typing.get_args(annotation)))
    return {annotation}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        leaves = _leaves(cls.model_fields[info.field_name].annotation)
        if not leaves & {int, float} or Any in leaves:
            return value
        literals = {v for a in leaves if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)}
        if isinstance(value, bool) and bool not in leaves and value not in literals:
            raise ValueError("expected a number, not a boolean")
        if isinstance(value, str) and str not in leaves and value not in literals:
            raise ValueError("expected a number, not a string")
        return value

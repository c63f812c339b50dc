"""Base class for params sections: strict (unknown keys are errors), immutable.

Numbers are numbers: ``true``/``false`` or a quoted string where an int or float is expected is an
error (pydantic would read ``true`` as 1), and so are ``.inf`` and ``.nan``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class ParamsError(ValueError):
    """A params file is missing, not YAML, or fails validation; the message names file and key."""


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

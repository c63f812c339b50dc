"""Base class for params sections: strict (unknown keys are errors), immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ParamsError(ValueError):
    """A params file is missing, not YAML, or fails validation; the message names file and key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

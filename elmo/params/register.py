"""Params of the register stage."""

from __future__ import annotations

from elmo.params.base import Section


class RegisterParams(Section):
    pass

"""Params of the tokenize stage."""

from __future__ import annotations

from elmo.params.base import Section


class TokenizeParams(Section):
    pass

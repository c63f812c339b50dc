"""Params of the vocab stage."""

from __future__ import annotations

from elmo.params.base import Section


class VocabParams(Section):
    pass

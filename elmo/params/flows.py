"""Params of the flows stage."""

from __future__ import annotations

from elmo.params.base import Section


class FlowsParams(Section):
    pass

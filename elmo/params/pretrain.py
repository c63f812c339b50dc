"""Params of the pretrain stage."""

from __future__ import annotations

from elmo.params.base import Section


class PretrainParams(Section):
    pass

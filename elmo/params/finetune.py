"""Params of the finetune stage."""

from __future__ import annotations

from elmo.params.base import Section


class FinetuneParams(Section):
    pass

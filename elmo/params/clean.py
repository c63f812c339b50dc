"""Params of the clean stage (see elmo/stages/clean.py)."""

from __future__ import annotations

from pydantic import Field

from elmo.params.base import Section


class CleanParams(Section):
    in_dir: str = "data/raw/petitions"
    out_parquet: str = "data/interim/petitions.parquet"
    quarantine: str = "data/interim/quarantine.jsonl"
    metrics: str = "metrics/clean.json"
    valid_fraction: float = Field(0.05, ge=0, lt=1)
    test_fraction: float = Field(0.05, ge=0, lt=1)
    split_salt: str = "elmo-ko-split-v1"

"""Params of the crawl stage (see elmo/stages/crawl.py)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from elmo.params.paths import WorkspacePath
from elmo.params.retry import RetryParams
from elmo.sources import source_kind

PUBLIC_ARCHIVE = "https://raw.githubusercontent.com/lovit/petitions_archive/master/"
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _check_month(value: str | None) -> str | None:
    if value is not None and not MONTH_RE.fullmatch(value):
        raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
    return value


class CrawlParams(RetryParams):  # + timeout_s, retries, backoff_base_s, backoff_max_s, retry_after_max_s
    source: str = PUBLIC_ARCHIVE  # http(s) base URL or local directory in the archive layout
    out_dir: WorkspacePath = "data/raw/petitions"
    months: list[str] | None = None  # explicit month list (YYYY-MM); null = every file in `files`
    month_from: str | None = None  # inclusive YYYY-MM bound applied to the listing
    month_to: str | None = None
    allow_missing_months: bool = False  # a listed month that 404s fails the stage unless true
    concurrency: int = Field(4, ge=1, le=64)

    @field_validator("source")
    @classmethod
    def _source_scheme(cls, value: str) -> str:
        source_kind(value)  # raises ValueError for anything but http(s) or a local path
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("an empty list selects nothing; use null for every listed month")
            for m in value:
                _check_month(m)
        return value

    @field_validator("month_from", "month_to")
    @classmethod
    def _bound(cls, value: str | None) -> str | None:
        return _check_month(value)

    @model_validator(mode="after")
    def _range(self) -> "CrawlParams":
        if self.month_from and self.month_to and self.month_from > self.month_to:
            raise ValueError(f"month_from {self.month_from} is after month_to {self.month_to}")
        return self

"""Params of the crawl stage (see elmo/stages/crawl.py)."""

from __future__ import annotations

from pydantic import Field

from elmo.params.base import Section

PUBLIC_ARCHIVE = "https://raw.githubusercontent.com/lovit/petitions_archive/master/"


class CrawlParams(Section):
    source: str = PUBLIC_ARCHIVE  # http(s) base URL or local directory in the archive layout
    out_dir: str = "data/raw/petitions"
    months: list[str] | None = None  # explicit month list (YYYY-MM); null = every file in `files`
    month_from: str | None = None  # inclusive YYYY-MM bound applied to the listing
    month_to: str | None = None
    allow_missing_months: bool = False  # a listed month that 404s fails the stage unless true
    concurrency: int = Field(4, ge=1, le=64)
    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)

"""The downloader's retry policy as params: the same five keys in every section that downloads
(``crawl`` and ``finetune.task``), defined once. ``elmo.crawl.RetryPolicy.from_params(section)``
turns a section into the policy (tests/test_params_defaults.py checks the two agree)."""

from __future__ import annotations

from pydantic import Field

from elmo.params.base import Section


class RetryParams(Section):
    timeout_s: float = Field(30.0, gt=0)  # connect / read / write timeout of each request
    retries: int = Field(5, ge=0)  # attempts after the first
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    retry_after_max_s: float = Field(300.0, ge=0)  # a longer Retry-After gives up instead of waiting

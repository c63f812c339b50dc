"""When and how long to wait before trying a download again.

Retried: timeouts, connection errors (refused, reset, dropped mid-body), HTTP 408, 429 and 5xx,
and a body that fails verification. Not retried: 404 (a missing file) and other 4xx.
Waits grow exponentially with "equal jitter" (half fixed, half random), capped at
``backoff_max_s``; a ``Retry-After`` header (seconds or an HTTP date) is honoured as given, unless
it asks for more than ``retry_after_max_s``, in which case the download gives up at once.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # attempts after the first
    timeout_s: float = 30.0  # connect / read / write timeout of each request
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0

    @classmethod
    def from_params(cls, p) -> "RetryPolicy":
        """From any params section with these five fields (e.g. ``params.crawl``)."""
        return cls(p.retries, p.timeout_s, p.backoff_base_s, p.backoff_max_s, p.retry_after_max_s)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        cap = min(self.backoff_max_s, self.backoff_base_s * (2.0**attempt))
        r = (rng or random).random()
        return cap / 2 + r * cap / 2


RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Date``, ``Last-Modified``, ``Retry-After``) as an aware datetime; None if absent/bad."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip()) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())

"""Fetching the petitions archive: sources and listings, the downloader, verification, manifest.

- ``source``   — which sources are accepted (http, https, local paths) and the ``files`` listing
- ``retry``    — the retry policy: backoff with jitter, Retry-After
- ``fetch``    — ``fetch_file``: one verified, atomic, resumable download (reused for KLUE YNAT)
- ``verify``   — what a month file must look like
- ``manifest`` — ``manifest.json``: url, bytes, sha256, lines and fetch time per file
"""

from elmo.crawl.fetch import (
                              BadLines,
                              Cancelled,
                              FetchError,
                              FetchResult,
                              NotFound,
                              VerifyError,
                              fetch_bytes,
                              fetch_file,
)
from elmo.crawl.retry import RetryPolicy

__all__ = [
    "Cancelled",
    "FetchError",
    "FetchResult",
    "NotFound",
    "RetryPolicy",
    "VerifyError",
    "BadLines",
    "fetch_bytes",
    "fetch_file",
]

"""Is a downloaded month file what the archive publishes? (used as ``fetch_file(verify=...)``)

Every line must be a JSON object with the archive's keys (extra keys, such as ``replies`` in some
months, are allowed). Types and values are the clean stage's business: it quarantines bad rows
one by one, while a file that is not even JSON lines was damaged on the way and is fetched again.
"""

from __future__ import annotations

import json
from pathlib import Path

from elmo.crawl.fetch import VerifyError

ARCHIVE_KEYS = ("category", "begin", "end", "content", "num_agree", "petition_idx", "status", "title")


def verify_month_file(path: Path) -> dict[str, int]:
    """Return ``{"lines": n}``; raise :class:`VerifyError` naming the first bad line and why."""
    n = 0
    last_had_newline = True
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            last_had_newline = raw.endswith(b"\n")
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as err:
                raise VerifyError(f"line {n}: not UTF-8 ({err.reason} at byte {err.start})") from None
            except json.JSONDecodeError as err:
                hint = " (last line, no final newline: truncated?)" if not last_had_newline else ""
                raise VerifyError(f"line {n}: not JSON: {err.msg} at column {err.colno}{hint}") from None
            if not isinstance(obj, dict):
                raise VerifyError(f"line {n}: a JSON {type(obj).__name__}, not an object")
            missing = [k for k in ARCHIVE_KEYS if k not in obj]
            if missing:
                raise VerifyError(f"line {n}: missing key(s) {', '.join(missing)}")
    if n == 0:
        raise VerifyError("empty file (no lines)")
    return {"lines": n}

"""Is a downloaded month file what the archive publishes? (used as ``fetch_file(verify=...)``)

Every line should be a JSON object with the archive's keys (extra keys, such as ``replies`` in some
months, are allowed). Types and values are the clean stage's business: it quarantines bad rows
one by one. A file with bad lines (not UTF-8, not JSON, blank, not an object, missing keys) may have
been damaged on the way and is fetched again; if the same bytes come back, they are what the
source publishes: accepted, with ``bad_lines`` counted (elmo/crawl/fetch.py :class:`BadLines`), and
clean quarantines those lines with their reasons. A file without a single good line is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from elmo.crawl.fetch import BadLines, VerifyError

ARCHIVE_KEYS = ("category", "begin", "end", "content", "num_agree", "petition_idx", "status", "title")


def _line_problem(raw: bytes, last_had_newline: bool) -> str | None:
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError as err:
        return f"not UTF-8 ({err.reason} at byte {err.start})"
    except json.JSONDecodeError as err:
        if not raw.strip():
            return "blank line"
        hint = " (last line, no final newline: truncated?)" if not last_had_newline else ""
        return f"not JSON: {err.msg} (column {err.colno}){hint}"
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    missing = [k for k in ARCHIVE_KEYS if k not in obj]
    return f"missing key(s) {', '.join(missing)}" if missing else None


def verify_month_file(path: Path) -> dict[str, int | str]:
    """Return ``{"lines": n}``; raise :class:`BadLines` naming the first bad line, why, and how many.

    An empty file, or one without any good line, raises a plain :class:`VerifyError`.
    """
    n, bad, first = 0, 0, None
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            problem = _line_problem(raw, raw.endswith(b"\n"))
            if problem:
                bad += 1
                first = first or f"line {n}: {problem}"
    if n == 0:
        raise VerifyError("empty file (no lines)")
    if bad == n:
        raise VerifyError(f"no good line in {n} ({first})")
    if bad:
        info = {"lines": n, "bad_lines": bad, "first_bad_line": first}
        raise BadLines(f"{first} ({bad} bad line(s) of {n})", info)
    return {"lines": n}

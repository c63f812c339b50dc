"""One raw line of a month file -> a typed record, or the reason it is quarantined.

Reasons (each with the offending ``field`` where there is one):

- ``bad_utf8``       the line is not UTF-8
- ``blank_line``     an empty line inside the file
- ``bad_json``       not JSON
- ``not_an_object``  JSON, but not an object
- ``missing_field``  one of the archive's fields is absent
- ``wrong_type``     a field of the wrong JSON type (null included)
- ``bad_value``      right type, impossible value (a date that is no date, end before begin,
                     a petition_idx that is not a positive integer, a negative num_agree)
- ``empty_text``     title and content both empty after normalisation (decided in the stage)

Integers may come as JSON numbers or as decimal strings (the archive stores petition_idx as a
string). Extra keys (e.g. ``replies`` in some months) are ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

REASONS = (
    "bad_utf8",
    "blank_line",
    "bad_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "bad_value",
    "empty_text",
)
TEXT_FIELDS = ("title", "content", "category", "status")
DATE_FIELDS = ("begin", "end")
INT_FIELDS = ("petition_idx", "num_agree")
FIELDS = ("petition_idx", "title", "content", "category", "status", "begin", "end", "num_agree")

# The columns of data/interim/petitions.parquet, in order (polars dtypes by name).
OUTPUT_COLUMNS = (
    ("petition_idx", "Int64"),
    ("title", "String"),
    ("content", "String"),
    ("category", "String"),
    ("status", "String"),
    ("begin", "Date"),
    ("end", "Date"),
    ("num_agree", "Int64"),
    ("source_file", "String"),
    ("source_line", "Int64"),  # 1-based line in source_file
    ("split", "String"),  # train | valid | test
)

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT_RE = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Rejection:
    reason: str
    field: str | None = None
    detail: str = ""


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), type(v).__name__
    )


def _int(obj: dict[str, Any], field: str) -> int | Rejection:
    v = obj[field]
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        return Rejection("wrong_type", field, f"expected an integer, got {_json_type(v)}")
    if isinstance(v, str):
        if not _INT_RE.fullmatch(v.strip()):
            return Rejection("bad_value", field, f"not an integer: {v[:40]!r}")
        v = int(v.strip())
    if field == "petition_idx" and v <= 0:
        return Rejection("bad_value", field, f"must be a positive integer, got {v}")
    if field == "num_agree" and v < 0:
        return Rejection("bad_value", field, f"must not be negative, got {v}")
    if not -(2**63) <= v < 2**63:
        return Rejection("bad_value", field, "does not fit in 64 bits")
    return v


def _date(obj: dict[str, Any], field: str) -> date | Rejection:
    v = obj[field]
    if not isinstance(v, str):
        return Rejection("wrong_type", field, f"expected a YYYY-MM-DD string, got {_json_type(v)}")
    s = v.strip()
    if not _DATE_RE.fullmatch(s):
        return Rejection("bad_value", field, f"not a YYYY-MM-DD date: {v[:40]!r}")
    try:
        return date.fromisoformat(s)
    except ValueError as err:
        return Rejection("bad_value", field, f"{v!r}: {err}")


def parse_record(raw: bytes) -> dict[str, Any] | Rejection:
    """The typed fields of one line (texts still raw), or a :class:`Rejection`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection("bad_utf8", None, f"{err.reason} at byte {err.start}")
    if not text.strip():
        return Rejection("blank_line")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return Rejection("bad_json", None, f"{err.msg} at column {err.colno}")
    if not isinstance(obj, dict):
        return Rejection("not_an_object", None, f"a JSON {_json_type(obj)}")
    for field in FIELDS:
        if field not in obj:
            return Rejection("missing_field", field)
    out: dict[str, Any] = {}
    for field in INT_FIELDS:
        value = _int(obj, field)
        if isinstance(value, Rejection):
            return value
        out[field] = value
    for field in TEXT_FIELDS:
        v = obj[field]
        if not isinstance(v, str):
            return Rejection("wrong_type", field, f"expected a string, got {_json_type(v)}")
        out[field] = v
    for field in DATE_FIELDS:
        value = _date(obj, field)
        if isinstance(value, Rejection):
            return value
        out[field] = value
    if out["end"] < out["begin"]:
        return Rejection("bad_value", "end", f"end {out['end']} is before begin {out['begin']}")
    return out

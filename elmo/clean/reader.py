"""The month files clean reads: exactly those in crawl's ``manifest.json``, checked by sha256.

A file missing, changed since it was fetched, or present without being in the manifest is an
error (a hand-edited raw directory would otherwise change the data silently), and so is a manifest
of a crawl that failed, was interrupted or killed (``incomplete``): clean would silently run on part of the
months. Months the source did not have (``missing``, with ``crawl.allow_missing_months``) are named
in clean's report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from elmo.crawl.manifest import MANIFEST_NAME
from elmo.crawl.source import MONTH_FILE_RE
from elmo.errors import StageError


def read_manifest(in_dir: Path) -> dict:
    """``in_dir``'s crawl manifest, refused if it records a crawl that did not finish."""
    path = in_dir / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (run `elmo crawl` first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data["files"], dict):
            raise TypeError("'files' is not a mapping")
    except (ValueError, KeyError, TypeError) as err:
        raise StageError(f"{path}: not a crawl manifest ({err}); rerun `elmo crawl`") from None
    incomplete = data.get("incomplete")
    if incomplete:
        months = incomplete.get("months") if isinstance(incomplete, dict) else None
        names = ", ".join(sorted(months)) if isinstance(months, dict) else "?"
        reason = incomplete.get("reason", "failed") if isinstance(incomplete, dict) else "failed"
        what = ("did not finish (killed, or still running)" if reason == "running" else reason)
        raise StageError(f"{path}: the last crawl {what} (months not fetched: {names}); "
                         "rerun `elmo crawl` until it succeeds, then clean")
    return data


def manifest_files(in_dir: Path) -> list[tuple[str, dict]]:
    """(name, manifest entry) of every month in ``in_dir``'s manifest, in month order."""
    path = in_dir / MANIFEST_NAME
    files = read_manifest(in_dir)["files"]
    for name in files:
        if not MONTH_FILE_RE.fullmatch(name):
            raise StageError(f"{path}: files.{name}: not a month file name (petitions_YYYY-MM)")
    stray = sorted(p.name for p in in_dir.iterdir() if MONTH_FILE_RE.fullmatch(p.name) and p.name not in files)
    if stray:
        raise StageError(f"{in_dir}: {', '.join(stray)} not in {MANIFEST_NAME}; "
                         "rerun `elmo crawl` (it keeps both in step)")
    if not files:
        raise StageError(f"{path}: lists no month files")
    return [(name, files[name]) for name in sorted(files)]


def read_month(in_dir: Path, name: str, entry: dict) -> bytes:
    """The bytes of one month, after checking them against the manifest's sha256."""
    path = in_dir / name
    if not path.is_file():
        raise StageError(f"{path}: listed in {MANIFEST_NAME} but missing; rerun `elmo crawl`")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise StageError(f"{path}: sha256 differs from {MANIFEST_NAME} (changed after the crawl?); rerun `elmo crawl`")
    return data


def split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its newline); a final newline does not make a line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line in enumerate(lines, 1):
        yield i, line[:-1] if line.endswith(b"\r") else line

"""``manifest.json`` beside the month files: what was fetched, from where, and its checksums.

::

    {"source": "<crawl.source as given>",
     "files": {"petitions_2019-04": {"url", "bytes", "sha256", "lines", "fetched_at",
                                     "etag"?, "last_modified"?, "content_length"?}, ...},
     "missing": ["petitions_2018-01", ...],      # listed months the source answered 404 for
     "incomplete": {"reason": "running" | "failed" | "interrupted", "months": {name: why}}}
                                                 # while a crawl runs and after one that did not
                                                 # finish; clean refuses it

An entry may also hold ``bad_lines`` (and ``first_bad_line``): lines of a month that the source
serves as they are (the same bytes twice, see elmo/crawl/fetch.py); clean quarantines them.

A crawl writes ``incomplete`` (reason ``running``, the months still to check) before it touches
anything else and clears it only once every month is done, so a crawl killed outright (kill -9,
power loss) leaves a manifest that says so. A finished crawl of an unchanged source still leaves
identical bytes, so DVC sees the same directory and nothing downstream reruns. Updated after every
finished file (so an interrupted crawl resumes where it stopped); thread-safe.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from elmo.io import atomic_write_json
from elmo.log import get_logger

log = get_logger("crawl")

MANIFEST_NAME = "manifest.json"


class Manifest:
    def __init__(self, path: Path, source: str, files: dict[str, dict[str, Any]] | None = None,
                 missing: list[str] | None = None, incomplete: dict[str, Any] | None = None) -> None:
        self.path = path
        self.source = source
        self.files: dict[str, dict[str, Any]] = dict(files or {})
        self.missing: list[str] = sorted(missing or [])
        self.incomplete: dict[str, Any] | None = incomplete or None
        self._lock = threading.Lock()
        self._written: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path, source: str) -> "Manifest":
        """The manifest at ``path``, or an empty one (a damaged manifest only costs a re-download)."""
        if not path.exists():
            return cls(path, source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = data["files"]
            if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
                raise ValueError("'files' is not a mapping of entries")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            log.warning("%s: unreadable (%s); every month will be checked against the source", path, err)
            return cls(path, source)
        m = cls(path, source, files, data.get("missing") or [], data.get("incomplete"))
        m._written = data
        return m

    def as_dict(self) -> dict[str, Any]:
        out = {
            "source": self.source,
            "files": {k: self.files[k] for k in sorted(self.files)},
            "missing": sorted(self.missing),
        }
        if self.incomplete:
            out["incomplete"] = self.incomplete
        return out

    def mark_incomplete(self, reason: str, months: dict[str, str]) -> None:
        """Record that this crawl has not finished (``running``: before its first write; ``failed``,
        ``interrupted``) and which months."""
        with self._lock:
            self.incomplete = {"reason": reason, "months": dict(sorted(months.items()))}
            self._save_locked()

    def record(self, name: str, entry: dict[str, Any]) -> None:
        with self._lock:
            self.files[name] = entry
            if self.incomplete and self.incomplete.get("reason") == "running":
                self.incomplete["months"].pop(name, None)  # what is left to do, should we be killed
            self._save_locked()

    def retain(self, names: set[str], missing: list[str]) -> None:
        """Keep only the entries of ``names``; record ``missing``; write if anything changed."""
        with self._lock:
            self.files = {k: v for k, v in self.files.items() if k in names}
            self.missing = sorted(set(missing))
            self.incomplete = None
            self._save_locked()

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        data = self.as_dict()
        if data != self._written:
            atomic_write_json(self.path, data)
            self._written = data

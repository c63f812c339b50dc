"""Where the archive lives: an http(s) base URL or a local directory, and its `files` listing.

Only ``http``, ``https`` and plain local paths are accepted. Every name read from a listing must be
a month file ``petitions_YYYY-MM`` (so a listing cannot point outside the source or the output
directory: no ``../x``, no ``/etc/passwd``, no sub-folders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from elmo.sources import source_kind  # the one definition (params validate sources with it too)

LISTING_NAME = "files"
MONTH_FILE_RE = re.compile(r"petitions_(\d{4}-(?:0[1-9]|1[0-2]))")


def overlap(source_dir: str | Path, out_dir: str | Path) -> str | None:
    """How ``out_dir`` overlaps a local ``source_dir`` ("is the same directory as", "lies inside",
    "contains"), or None: a stage writing there would write or delete files of its source."""
    source, target = Path(source_dir).resolve(), Path(out_dir).resolve()
    if target == source:
        return "is the same directory as"
    if source in target.parents:
        return "lies inside"
    if target in source.parents:
        return "contains"
    return None


def month_of(name: str) -> str:
    """``petitions_2019-04`` -> ``2019-04``; ``ValueError`` for any other name."""
    m = MONTH_FILE_RE.fullmatch(name)
    if not m:
        raise ValueError(f"{name!r} is not a month file name (petitions_YYYY-MM)")
    return m.group(1)


def month_file(month: str) -> str:
    name = f"petitions_{month}"
    month_of(name)
    return name


@dataclass(frozen=True)
class Source:
    """A validated archive location. ``base`` is a URL ending in '/' or an absolute directory."""

    kind: str
    base: str
    given: str

    @classmethod
    def parse(cls, source: str, root: Path) -> "Source":
        kind = source_kind(source)
        if kind == "http":
            return cls(kind, source if source.endswith("/") else source + "/", source)
        path = Path(source).expanduser()
        path = (root / path) if not path.is_absolute() else path
        if not path.is_dir():
            raise FileNotFoundError(f"crawl.source: {source}: no such directory")
        return cls(kind, str(path.resolve()), source)

    def locate(self, name: str) -> str:
        """The URL or path of ``name`` (the listing or a month file) inside the source."""
        if name != LISTING_NAME:
            month_of(name)
        if self.kind == "http":
            return self.base + name
        return str(Path(self.base) / name)


def parse_listing(text: str, where: str) -> list[str]:
    """Month file names from the archive's plain-text ``files`` list, in order, without repeats.

    Blank lines are ignored; any other entry that is not ``petitions_YYYY-MM`` is an error naming
    the listing and its line.
    """
    names: list[str] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        name = raw.strip()
        if not name:
            continue
        try:
            month_of(name)
        except ValueError as err:
            raise ValueError(f"{where}: line {lineno}: {err}; refusing the listing") from None
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names

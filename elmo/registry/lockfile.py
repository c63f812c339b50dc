"""Read ``dvc.lock``: per stage, the md5 of every dep and out and the params values DVC recorded.

These hashes are what a registered version is tagged with and how a version is matched to the
git commit whose ``dvc.lock`` produced it. ``dvc.lock`` is parsed as YAML (schema 2.0), from the
workspace or from any commit, so no DVC repository lock is needed (register runs inside
``dvc repro``, which holds it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from elmo.errors import StageError

LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class LockedStage:
    name: str
    deps: dict[str, str] = field(default_factory=dict)  # path -> md5 ("….dir" for directories)
    outs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # params file -> {key: value}

    def params_md5(self) -> str:
        blob = json.dumps(self.params, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.md5(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Lock:
    stages: dict[str, LockedStage]
    where: str  # for messages: "dvc.lock" or "dvc.lock at 1a2b3c4"

    def stage(self, name: str) -> LockedStage:
        if name not in self.stages:
            have = ", ".join(sorted(self.stages)) or "none"
            raise StageError(f"{self.where}: no stage {name!r} (stages recorded: {have}); "
                             f"run `dvc repro {name}` first")
        return self.stages[name]

    def params_files(self) -> set[str]:
        return {f for s in self.stages.values() for f in s.params}

    def out_paths(self) -> set[str]:
        return {p for s in self.stages.values() for p in s.outs}

    def producer_of(self, path: str) -> str | None:
        """The stage whose out is ``path`` or contains it (``data/x`` inside out ``data``)."""
        for s in self.stages.values():
            for out in s.outs:
                if path == out or path.startswith(out.rstrip("/") + "/"):
                    return s.name
        return None


def _entries(stage: str, key: str, items: Any, where: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise StageError(f"{where}: stages.{stage}.{key}: expected a list, got {type(items).__name__}")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "path" not in item:
            raise StageError(f"{where}: stages.{stage}.{key}[{i}]: expected a mapping with 'path'")
        digest = item.get("md5") or item.get("etag") or item.get("checksum")
        if digest is None:  # hash: md5 is DVC 3's; older files may carry other hash names
            hashes = [v for k, v in item.items() if k not in {"path", "hash", "size", "nfiles", "isexec"}]
            digest = str(hashes[0]) if hashes else ""
        out[str(item["path"])] = str(digest)
    return out


def parse_lock(text: str | bytes, where: str = LOCK_FILE) -> Lock:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StageError(f"{where}: not valid YAML: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), dict):
        raise StageError(f"{where}: not a dvc.lock file (no 'stages' mapping)")
    if str(data.get("schema", "2.0")) != "2.0":
        raise StageError(f"{where}: schema {data.get('schema')!r} is not supported (expected '2.0')")
    stages: dict[str, LockedStage] = {}
    for name, entry in data["stages"].items():
        if not isinstance(entry, dict):
            raise StageError(f"{where}: stages.{name}: expected a mapping")
        params = entry.get("params") or {}
        if not isinstance(params, dict):
            raise StageError(f"{where}: stages.{name}.params: expected a mapping of params files")
        stages[str(name)] = LockedStage(
            name=str(name),
            deps=_entries(name, "deps", entry.get("deps"), where),
            outs=_entries(name, "outs", entry.get("outs"), where),
            params=params,
        )
    return Lock(stages=stages, where=where)


def read_lock(root: Path) -> Lock:
    path = Path(root) / LOCK_FILE
    if not path.exists():
        raise StageError(f"{path}: not found; run the pipeline with `dvc repro` so DVC records "
                         "the hashes of what it produced")
    return parse_lock(path.read_bytes(), str(path))

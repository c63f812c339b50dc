"""Putting a commit's pipeline files back, and remembering what the last rollback wrote.

The pipeline's git-tracked files (:func:`pipeline_files`) are written as the target commit has
them, then ``dvc checkout`` puts the data in place (:func:`restore`); on any error both are put
back. The state file (``register.rollback_state``, in a self-ignoring folder) records the sha256
of what was written, so the next rollback can tell its own writes from a user's edits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from elmo import dvcrepo, gitrepo
from elmo.io import atomic_write_bytes, atomic_write_json
from elmo.registry.lockfile import LOCK_FILE, Lock

PIPELINE_FILES = ("dvc.yaml", LOCK_FILE)


def pipeline_files(root: Path, commit: str, lock: Lock | None) -> set[str]:
    """The git-tracked files that describe the pipeline's state at ``commit``."""
    tracked = gitrepo.tracked_files(root, commit)
    outs = lock.out_paths() if lock else set()
    params_files = lock.params_files() if lock else set()
    wanted = set()
    for f in tracked:
        if (f in PIPELINE_FILES or f in params_files or f.endswith(".dvc")
                or any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs)):
            wanted.add(f)
    return wanted


def read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def sha(content: bytes | None) -> str | None:
    return hashlib.sha256(content).hexdigest() if content is not None else None


def _put(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    elif read(path) != content:
        atomic_write_bytes(path, content)


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(root: Path, rel: str, state: dict[str, Any]) -> None:
    path = root / rel
    if path.parent != root and not (path.parent / ".gitignore").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / ".gitignore").write_text("# written by `elmo rollback`; never committed\n*\n")
    atomic_write_json(path, state)


def restore(root: Path, repo, commit: str, files: set[str]) -> tuple[list[str], dict[str, str | None], dict]:
    """Write the files as ``commit`` has them and check the data out; on any error, put both back.

    Returns (the files that changed, sha256 of every file as written, ``dvc checkout``'s changes).
    """
    backup = {f: read(root / f) for f in files}
    written: dict[str, str | None] = {}
    changed: list[str] = []
    try:
        for f in sorted(files):
            content = gitrepo.show(root, commit, f)
            if content != backup[f]:
                _put(root / f, content)
                changed.append(f)
            written[f] = sha(content)
        return changed, written, dvcrepo.checkout(repo)
    except BaseException:
        for f, content in backup.items():
            _put(root / f, content)
        try:
            dvcrepo.checkout(repo)
        except Exception:  # the original error is the one to report
            pass
        raise

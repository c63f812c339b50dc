"""The workspace a flow runs in: finding its root, its params, and one pipeline run at a time
(the lock itself is elmo/workspace_lock.py: ``elmo repro`` takes the same one)."""

from __future__ import annotations

from pathlib import Path

from elmo.errors import StageError
from elmo.params import Params, load_params
from elmo.workspace_lock import LOCK_FILE, workspace_lock

__all__ = ["LOCK_FILE", "PARAMS_FILE", "resolve_root", "workspace_lock", "workspace_params"]

PARAMS_FILE = "params.yaml"


def resolve_root(root: str | Path | None = None) -> Path:
    """The workspace root: ``root`` if given, else the DVC repository around the current directory."""
    if root is None:
        here = Path.cwd().resolve()
        for candidate in (here, *here.parents):
            if (candidate / ".dvc").is_dir():
                return candidate
        raise StageError(f"{here}: not inside a DVC workspace (no .dvc/ here or above); pass root=")
    path = Path(root).expanduser().resolve()
    if not (path / ".dvc").is_dir():
        raise StageError(f"{path}: not a DVC workspace (no .dvc/ directory)")
    if not (path / "dvc.yaml").is_file():
        raise StageError(f"{path}: no dvc.yaml, so there is no pipeline to run")
    return path


def workspace_params(root: Path) -> Params:
    """The workspace's params.yaml, validated (a ParamsError names the file and key)."""
    return load_params(root / PARAMS_FILE)

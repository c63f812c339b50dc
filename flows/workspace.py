"""The workspace a flow runs in: finding its root, its params, and one pipeline run at a time.

DVC already refuses two ``dvc repro`` at once (its repo lock); a flow run holds this lock for the
whole pipeline, so a nightly run that meets a monthly run waits for it (up to
``flows.lock_timeout_s``) instead of failing half-way through with DVC's lock error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from elmo.errors import StageError
from elmo.params import Params, load_params

LOCK_FILE = ".prefect/pipeline.lock"
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


@contextlib.contextmanager
def workspace_lock(root: Path, timeout_s: float, poll_s: float = 1.0, log=None) -> Iterator[None]:
    """Hold an exclusive lock on the workspace's pipeline for the duration of the block."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read_holder(path)
                if time.monotonic() >= deadline:
                    raise StageError(
                        f"{path}: another pipeline run ({holder}) still holds this workspace after "
                        f"{timeout_s:g} s (flows.lock_timeout_s); try again when it has finished"
                    ) from None
                if not waited and log is not None:
                    log.info("waiting for another pipeline run on this workspace (%s) to finish", holder)
                waited = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown process"
    except OSError:
        return "unknown process"

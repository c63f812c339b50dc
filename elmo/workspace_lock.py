"""One pipeline run at a time per workspace: an exclusive lock held for a whole run and its record.

DVC already refuses two ``dvc repro`` at once (its repo lock); a pipeline run (``elmo repro``, the
Prefect flows) holds this lock for every stage *and* the record commit that follows, so a nightly
run that meets a monthly run waits for it (up to ``flows.lock_timeout_s``) instead of failing
half-way through with DVC's lock error, and two runs never record at once.
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

LOCK_FILE = ".prefect/pipeline.lock"


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

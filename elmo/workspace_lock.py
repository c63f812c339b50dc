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
from collections.abc import Callable, Iterator
from pathlib import Path

from elmo.errors import StageError

LOCK_FILE = ".prefect/pipeline.lock"


@contextlib.contextmanager
def workspace_lock(root: Path, timeout_s: float, poll_s: float = 1.0, log=None) -> Iterator[None]:
    """Hold an exclusive lock on the workspace's pipeline for the duration of the block."""
    path = root / LOCK_FILE

    def busy(holder: str) -> str:
        return (f"{path}: another pipeline run ({holder}) still holds this workspace after "
                f"{timeout_s:g} s (flows.lock_timeout_s); try again when it has finished")

    def on_wait(holder: str) -> None:
        if log is not None:
            log.info("waiting for another pipeline run on this workspace (%s) to finish", holder)

    with exclusive(path, busy=busy, timeout_s=timeout_s, poll_s=poll_s, on_wait=on_wait):
        yield


STAGE_LOCK_DIR = ".elmo"  # one lock file per stage (git-ignored)


@contextlib.contextmanager
def stage_lock(root: Path, stage: str) -> Iterator[None]:
    """One ``elmo <stage>`` at a time in a workspace: a second is refused at once, in one line naming
    the first (two runs would mix their temporaries, or their MLflow runs' files)."""
    path = Path(root) / STAGE_LOCK_DIR / f"{stage}.lock"

    def busy(holder: str) -> str:
        return (f"another `elmo {stage}` is running in this workspace ({holder}; lock {path}); "
                "wait for it to finish, then rerun")

    with exclusive(path, busy=busy):
        yield


@contextlib.contextmanager
def exclusive(path: Path, *, busy: Callable[[str], str], timeout_s: float = 0.0, poll_s: float = 1.0,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (``flock``: released by the kernel when its holder dies, even by
    kill -9, so a stale file never blocks anyone). If another process holds it, wait up to
    ``timeout_s`` (``on_wait(holder)`` is called once), then raise StageError(``busy(holder)``);
    ``holder`` is what the holder wrote ("pid N on HOST since TIME")."""
    path = Path(path)
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
                    raise StageError(busy(holder)) from None
                if not waited and on_wait is not None:
                    on_wait(holder)
                waited = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
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

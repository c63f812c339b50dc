"""Errors a user sees as one clear message (the CLI prints them without a traceback)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class StageError(RuntimeError):
    """A stage cannot go on: bad input (named by file, line and field), a failed download, …"""


class ParamsError(ValueError):
    """A params file is missing, not YAML, or fails validation; the message names file and key."""


class Interrupted(StageError):
    """Ctrl-C or SIGTERM stopped a stage; the message says what was kept. Exit status 130."""

    exit_code = 130


USER_ERRORS = (StageError, ParamsError, FileNotFoundError)


class Signals:
    """What :func:`signals_as_interrupt` saw: the first signal's name (None: none arrived)."""

    received: str | None = None


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[Signals]:
    """SIGTERM (a scheduler, ``kill``, ``timeout``) stops the block like Ctrl-C: KeyboardInterrupt is
    raised in the main thread, so ``finally`` blocks and context managers clean up (temporaries,
    worker processes, the MLflow run). Only the first SIGTERM raises; later ones are ignored so the
    cleanup runs to its end. A SIGINT that is ignored (a background job) stays ignored. Outside the
    main thread this does nothing (Python delivers signals to the main thread only)."""
    seen = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum, frame):
        first = seen.received is None
        if first:
            seen.received = signal.Signals(signum).name
        if first or signum == signal.SIGINT:  # a second Ctrl-C still interrupts the cleanup
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


__all__ = ["StageError", "ParamsError", "Interrupted", "USER_ERRORS", "Signals", "signals_as_interrupt"]

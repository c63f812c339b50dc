"""Errors a user sees as one clear message (the CLI prints them without a traceback)."""

from __future__ import annotations

from elmo.params.base import ParamsError


class StageError(RuntimeError):
    """A stage cannot go on: bad input (named by file, line and field), a failed download, …"""


class Interrupted(StageError):
    """Ctrl-C or SIGTERM stopped a stage; the message says what was kept. Exit status 130."""

    exit_code = 130


USER_ERRORS = (StageError, ParamsError, FileNotFoundError)

__all__ = ["StageError", "ParamsError", "Interrupted", "USER_ERRORS"]

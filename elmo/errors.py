"""Errors a user sees as one clear message (the CLI prints them without a traceback)."""

from __future__ import annotations

from elmo.params.base import ParamsError


class StageError(RuntimeError):
    """A stage cannot go on: bad input (named by file, line and field), a failed download, …"""


USER_ERRORS = (StageError, ParamsError, FileNotFoundError)

__all__ = ["StageError", "ParamsError", "USER_ERRORS"]

"""Human messages: one logger tree (``elmo.*``) that writes to stderr.

The stage contract (ARCHITECTURE.md): a stage command's stdout carries only its JSON report, so
``elmo <stage> | python -m json.tool`` (or ``| jq``) always works; progress lines and messages go
to stderr, through this logger (and tqdm's bars, which write to stderr too). ``configure()`` is
called once by the one entry point, :func:`elmo.cli.run_stage` (the CLI, DVC, Prefect and tests all
go through it); a library user who never calls it sees warnings only, as Python logging does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

ROOT = "elmo"


def get_logger(name: str) -> logging.Logger:
    """The logger of one part of the pipeline: ``elmo.<name>`` (e.g. ``elmo.finetune``)."""
    return logging.getLogger(f"{ROOT}.{name}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the message (pytest, redirections)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: int = logging.INFO) -> logging.Logger:
    """Attach the one stderr handler to ``elmo`` (once; later calls only set the level)."""
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # not twice when an application configures the root logger as well
    return root


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While a stage runs, whatever would reach stdout goes to stderr instead: Python ``print``s and
    writes to file descriptor 1 by libraries and child processes (Lightning's DDP workers inherit
    it). The CLI prints the report to the real stdout afterwards, so stdout holds only the report."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptors 1/2 (an embedding host): Python-level redirection only
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)

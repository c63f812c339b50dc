"""Run DVC commands for one stage as a subprocess, streaming their output into the task's log.

``dvc repro --single-item <stage>`` keeps dvc.lock the record of what ran; its output (the stage's
own stdout/stderr included) goes line by line to the Prefect log, and a failure raises
:class:`StageFailed` whose message carries the last lines, so the stage's own error is what the
flow run shows.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from elmo.errors import StageError

TAIL_LINES = 30
PROGRESS_EVERY_S = 15.0


class StageFailed(StageError):
    """A DVC command for a stage exited non-zero; the message ends with its last output lines."""


def subprocess_env() -> dict[str, str]:
    """The environment for stage commands: this interpreter's bin/ first on PATH, so ``elmo``
    (the stages' cmd) and ``dvc`` resolve to this installation even when the venv isn't active."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def stream(cmd: list[str], cwd: str | Path, label: str, logger: logging.Logger | logging.LoggerAdapter,
           progress_every_s: float = PROGRESS_EVERY_S) -> tuple[int, list[str]]:
    """Run ``cmd``; log each output line as ``<label> | line``; return (exit status, lines).

    Progress bars (tqdm redraws a line ending in "\r") are logged at most every
    ``progress_every_s`` seconds, plus their last state, so a long stage does not flood the log.
    """
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    pending: str | None = None  # the latest progress redraw not logged yet
    last_progress = -float("inf")
    try:
        assert proc.stdout is not None
        for raw in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace", newline=""):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if raw.endswith("\r") and not raw.endswith("\r\n"):
                pending = line
                if time.monotonic() - last_progress >= progress_every_s:
                    logger.info("%s | %s", label, line)
                    pending, last_progress = None, time.monotonic()
                continue
            if pending is not None and pending != line:  # the bar's last state before it ended
                logger.info("%s | %s", label, pending)
            pending = None
            lines.append(line)
            logger.info("%s | %s", label, line)
        if pending is not None:
            logger.info("%s | %s", label, pending)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return rc, lines


def run_dvc(root: str | Path, args: list[str], stage: str, logger: logging.Logger | logging.LoggerAdapter) -> list[str]:
    """Run ``dvc <args>`` in ``root``; log its output; return the output lines (progress excluded).

    Raises :class:`StageFailed` (naming the stage and the command, ending with the output's tail)
    when the command fails.
    """
    shown = "dvc " + " ".join(args)
    logger.info("%s: $ %s", stage, shown)
    rc, lines = stream([sys.executable, "-m", "dvc", *args], root, stage, logger)
    if rc != 0:
        detail = "\n".join(lines[-TAIL_LINES:]) or "(no output)"
        raise StageFailed(f"stage {stage!r} failed: `{shown}` exited with status {rc}:\n{detail}")
    return lines


def repro(root: str | Path, stage: str, logger, *, force: bool = False) -> list[str]:
    """``dvc repro --single-item [--force] <stage>``: run one stage if DVC says it changed."""
    return run_dvc(root, ["repro", "--single-item", *(["--force"] if force else []), stage], stage, logger)


def commit(root: str | Path, stage: str, logger) -> list[str]:
    """``dvc commit --force <stage>``: record outputs produced outside ``dvc repro`` in dvc.lock."""
    return run_dvc(root, ["commit", "--force", stage], stage, logger)

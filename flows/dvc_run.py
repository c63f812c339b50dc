"""Run DVC commands for one stage as a subprocess, streaming their output into the task's log.

``dvc repro --single-item <stage>`` keeps dvc.lock the record of what ran; its output (the stage's
own stdout/stderr included) goes line by line to the Prefect log, and a failure raises
:class:`StageFailed` whose message carries the last lines, so the stage's own error is what the
flow run shows.
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import sys
from pathlib import Path

from elmo.errors import StageError

TAIL_LINES = 30


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


def run_dvc(root: str | Path, args: list[str], stage: str, logger: logging.Logger | logging.LoggerAdapter) -> list[str]:
    """Run ``dvc <args>`` in ``root``; log every output line; return the output lines.

    Raises :class:`StageFailed` (naming the stage and the command, ending with the output's tail)
    when the command fails.
    """
    cmd = [sys.executable, "-m", "dvc", *args]
    shown = "dvc " + " ".join(args)
    logger.info("%s: $ %s", stage, shown)
    lines: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(
        cmd, cwd=str(root), env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, encoding="utf-8", errors="replace", bufsize=1,
    )
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if line.strip():
                tail.append(line)
                logger.info("%s | %s", stage, line)
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        detail = "\n".join(tail) or "(no output)"
        raise StageFailed(f"stage {stage!r} failed: `{shown}` exited with status {rc}:\n{detail}")
    return lines


def repro(root: str | Path, stage: str, logger, *, force: bool = False) -> list[str]:
    """``dvc repro --single-item [--force] <stage>``: run one stage if DVC says it changed."""
    return run_dvc(root, ["repro", "--single-item", *(["--force"] if force else []), stage], stage, logger)


def commit(root: str | Path, stage: str, logger) -> list[str]:
    """``dvc commit --force <stage>``: record outputs produced outside ``dvc repro`` in dvc.lock."""
    return run_dvc(root, ["commit", "--force", stage], stage, logger)

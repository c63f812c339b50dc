"""How a training ended, and the one test hook that slows training down.

Every training (pretrain, finetune's adaptation and task models) ends by a count by default: steps,
epochs, or early stopping on the held-out slice. A wall clock (``max_minutes``) is an explicit
opt-in: what a clock-ended run learnt depends on this machine's speed and load, so the stage warns
once (:func:`warn_clock`) and its metrics, report and MLflow run say ``ended_by: clock``.

``ELMO_STEP_SLEEP_S`` (an environment variable, not a param: it must never change the model) makes
every training step sleep that many seconds (:func:`step_pause`, called once per optimizer step by
the pretrain, adapt and task-model loops). tests/test_record_speed.py uses it to check that a
slower machine gives the same model.
"""

from __future__ import annotations

import os
import time
from logging import Logger

STEPS, EPOCHS, EARLY_STOP, CLOCK = "steps", "epochs", "early_stop", "clock"
ENDED_BY = (STEPS, EPOCHS, EARLY_STOP, CLOCK)

STEP_SLEEP_ENV = "ELMO_STEP_SLEEP_S"


def step_pause() -> None:
    """Sleep ``$ELMO_STEP_SLEEP_S`` seconds (unset or 0: return at once). Tests only."""
    value = os.environ.get(STEP_SLEEP_ENV)
    if not value:
        return
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{STEP_SLEEP_ENV}={value!r}: expected seconds (a number)") from None
    if seconds > 0:
        time.sleep(seconds)


def summary(ended: dict[str, str], main: str) -> str:
    """One word for a run that trained several things: ``clock`` if a clock ended any of them (the
    run's results then depend on the machine's speed), else how ``main`` ended."""
    return CLOCK if CLOCK in ended.values() else ended[main]


def warn_clock(log: Logger, stage: str, ended: dict[str, str]) -> bool:
    """One warning when a clock ended any of ``ended`` (name -> how it ended); True if it did."""
    clocked = [name for name, how in ended.items() if how == CLOCK]
    if clocked:
        log.warning(f"{stage}: a wall-clock budget (max_minutes) ended {', '.join(clocked)} before its "
                    "steps/epochs: the result depends on this machine's speed and load (ended_by: clock); "
                    "set max_minutes: null for a result that does not")
    return bool(clocked)

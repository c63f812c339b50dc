"""The one training loop of finetune: adapt's LM fine-tuning of the biLM (elmo/task/adapt.py) and the
task model's :func:`~elmo.task.train.fit` (elmo/task/train.py) both have this shape::

    loop = TrainLoop(optimizer, grad_clip=5.0, lr_factor=..., max_steps=... | max_epochs=..., max_seconds=...)
    for epoch in loop.epochs():                      # until the budget (below) ends it
        with loop.progress(desc, total):
            for batch in loop.take(batches(rng)):    # stops mid-epoch when the step budget or clock is reached
                loss, out = loop.step(lambda: (loss_tensor, anything))
        ... per-epoch work (evaluation, early stopping: loop.stop_early(); break)
    loop.ended_by                                    # steps | epochs | early_stop | clock (elmo/budget.py)

One :meth:`TrainLoop.step`, in this order (the order every saved model was trained with; changing it
changes their bytes): the learning rates from the schedule (each group's initial lr x
``lr_factor(step)``), the forward pass, ``zero_grad``, backward, gradient-norm clipping over the
parameters that train now (those of the optimizer's groups with ``requires_grad``, in group order),
the optimizer step, then elmo/budget.py's test hook (``ELMO_STEP_SLEEP_S``). Only the caller's
forward pass and the batches consume randomness; the loop consumes none.

The budget: a count, ``max_steps`` (adapt) or ``max_epochs`` (the task model), and an opt-in wall
clock ``max_seconds``. With ``max_steps`` the clock is checked before every step; with ``max_epochs``
between epochs: no epoch starts that would end past it (the last epoch's length is the forecast).

Pretraining's loop is Lightning's (elmo/train/module.py); its schedule, like these, is in
elmo/train/schedule.py.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from elmo.budget import CLOCK, EARLY_STOP, EPOCHS, STEPS, step_pause

T = TypeVar("T")


class Clock:
    """The opt-in wall clock of a training (``max_seconds`` None or 0: none) and its elapsed time."""

    def __init__(self, max_seconds: float | None) -> None:
        self.max_seconds = max_seconds or None
        self.start = time.perf_counter()
        self.deadline = self.start + self.max_seconds if self.max_seconds else math.inf

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def passed(self) -> bool:
        return time.perf_counter() >= self.deadline

    def would_pass(self, seconds: float) -> bool:
        """Whether ``seconds`` more would end past the clock (never, without one)."""
        return self.max_seconds is not None and self.elapsed() + seconds > self.max_seconds


class TrainLoop:
    """Steps an optimizer over a training's batches within its budget (module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, grad_clip: float,
                 lr_factor: Callable[[int], float] | None = None, max_steps: int | None = None,
                 max_epochs: int | None = None, max_seconds: float | None = None,
                 log: Callable[[str], None] = print, name: str = "training") -> None:
        if (max_steps is None) == (max_epochs is None):
            raise ValueError("a TrainLoop needs exactly one count budget: max_steps or max_epochs")
        if grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0, got {grad_clip}")
        self.optimizer, self.grad_clip, self.lr_factor = optimizer, grad_clip, lr_factor
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.clock = Clock(max_seconds)
        self.log, self.name = log, name
        self.steps, self.epoch = 0, 0
        self.ended: str | None = None
        self._bar: Any = None
        self._recent: deque[float] = deque(maxlen=20)  # the progress bar's running loss

    @property
    def ended_by(self) -> str:
        """``steps`` | ``epochs`` | ``early_stop`` | ``clock`` (elmo/budget.py)."""
        if self.ended is None:
            raise RuntimeError(f"{self.name}: ended_by asked before the loop ended")
        return self.ended

    def over(self) -> bool:
        """Whether the budget has ended the loop (with ``max_steps``: the step count, else the clock)."""
        if self.ended is None and self.max_steps is not None:
            if self.steps >= self.max_steps:
                self.ended = STEPS
            elif self.clock.passed():
                self.ended = CLOCK
        return self.ended is not None

    def epochs(self) -> Iterator[int]:
        """1, 2, ... while the budget lasts: with ``max_epochs``, until the last one (``epochs``) or
        until the next one would end past the clock (``clock``); with ``max_steps``, until :meth:`over`."""
        while not self.over():
            if self.max_epochs is not None and self.epoch >= self.max_epochs:
                self.ended = EPOCHS
                return
            self.epoch += 1
            start = time.perf_counter()
            yield self.epoch
            if (self.max_epochs is not None and self.epoch < self.max_epochs
                    and self.clock.would_pass(time.perf_counter() - start)):
                self.log(f"{self.name}: stopping after epoch {self.epoch}: another epoch would pass the time "
                         f"budget ({self.clock.elapsed():.0f}s used of {self.clock.max_seconds:.0f}s)")
                self.ended = CLOCK

    def stop_early(self) -> None:
        """Early stopping ends the loop (call, then leave the epoch): ``early_stop``, or ``epochs`` on the last one."""
        self.ended = EARLY_STOP if self.max_epochs is None or self.epoch < self.max_epochs else EPOCHS

    def take(self, batches: Iterable[T]) -> Iterator[T]:
        """``batches`` while :meth:`over` is false, checked before each."""
        for batch in batches:
            if self.over():
                return
            yield batch

    @contextmanager
    def progress(self, desc: str, total: int, leave: bool = True) -> Iterator[None]:
        """A progress bar (stderr) over the steps taken inside, with the running loss."""
        with tqdm(total=total, desc=desc, unit="step", leave=leave, mininterval=2.0) as bar:
            self._bar = bar
            try:
                yield
            finally:
                self._bar = None

    def trainable(self) -> list[torch.nn.Parameter]:
        """The parameters this step trains: the optimizer's, in group order, that require a gradient."""
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.requires_grad]

    def step(self, forward: Callable[[], tuple[torch.Tensor, T]]) -> tuple[float, T]:
        """One optimizer step; ``forward()`` returns (the loss to minimise, anything the caller keeps).
        Returns (the loss as a float, that)."""
        if self.lr_factor is not None:
            m = self.lr_factor(self.steps)
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * m
        loss, out = forward()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable(), self.grad_clip)
        self.optimizer.step()
        step_pause()
        self.steps += 1
        value = float(loss.detach())
        self._recent.append(value)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{np.mean(self._recent):.3f}", refresh=False)
        return value, out

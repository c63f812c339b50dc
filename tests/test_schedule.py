"""elmo/train/schedule.py holds every learning-rate schedule: pretrain's warmup/decay (it was
elmo/train/module.py's lr_factor body), STLR and discriminative rates (elmo/task/schedule.py's).
The former formulas are kept here: the values must be the same, step by step, bit for bit."""

from __future__ import annotations

import math

import pytest

from elmo.params.pretrain import TrainParams
from elmo.train.module import lr_factor
from elmo.train.schedule import UnfreezePlan, discriminative_lrs, slanted_triangular, warmup_decay


def _old_lr_factor(step: int, train: TrainParams) -> float:  # elmo/train/module.py before
    if train.warmup_steps and step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.schedule == "constant":
        return 1.0
    span = max(1, train.max_steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    lo = train.min_lr_ratio
    if train.schedule == "linear":
        return 1.0 - (1.0 - lo) * progress
    return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _old_stlr(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:  # elmo/task/schedule.py
    cut = max(1, int(total * cut_frac))
    t = min(step, total - 1)
    p = t / cut if t < cut else 1.0 - (t - cut) / max(1, total - cut)
    return (1.0 + p * (ratio - 1.0)) / ratio


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("warmup, max_steps, lo", [(0, 1, 0.1), (10, 110, 0.1), (20, 2000, 0.0), (5, 60, 1.0),
                                                   (7, 7, 0.3), (30, 10, 0.5)])
def test_warmup_decay_is_the_old_lr_factor(schedule, warmup, max_steps, lo) -> None:
    t = TrainParams(schedule=schedule, warmup_steps=warmup, max_steps=max_steps, min_lr_ratio=lo)
    for step in range(max_steps + warmup + 20):
        old = _old_lr_factor(step, t)
        assert lr_factor(step, t) == old
        assert warmup_decay(step, warmup_steps=warmup, max_steps=max_steps, schedule=schedule, min_lr_ratio=lo) == old


def test_warmup_decay_names_an_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="schedule must be one of constant, linear, cosine, got 'step'"):
        warmup_decay(50, warmup_steps=0, max_steps=100, schedule="step", min_lr_ratio=0.1)


@pytest.mark.parametrize("total, cut_frac, ratio", [(1, 0.1, 32.0), (100, 0.1, 32.0), (400, 0.1, 32.0),
                                                    (37, 0.25, 10.0), (5, 0.5, 2.0)])
def test_slanted_triangular_is_the_old_formula(total, cut_frac, ratio) -> None:
    for step in range(total + 5):
        assert slanted_triangular(step, total, cut_frac, ratio) == _old_stlr(step, total, cut_frac, ratio)


def test_discriminative_lrs_are_the_old_group_lrs() -> None:
    for lr, n, factor, scale in [(0.01, 3, 2.6, 0.5), (1e-3, 5, 2.6, 1.0), (0.02, 0, 1.0, 1.0)]:
        old = [lr] + [lr * scale / factor ** k for k in range(n)]  # UnfreezePlan.group_lrs before
        assert discriminative_lrs(lr, n, factor, scale) == old
        assert UnfreezePlan(n_groups=n, lr=lr, factor=factor, bilm_lr_scale=scale).group_lrs() == old

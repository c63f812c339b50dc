"""Every learning-rate schedule of the project, and the classifier's gradual unfreezing.

Pretraining (elmo/train/module.py, ``pretrain.presets.*.train``):

* **Warmup, then decay** (:func:`warmup_decay`): linear warmup over ``warmup_steps``, then constant,
  linear or cosine decay to ``min_lr_ratio`` x the peak at ``max_steps``.

ULMFiT's recipe for a pretrained LM inside a classifier (Howard & Ruder 2018, §3.2-3.3), used by the
classifier's loop (elmo/task/train.py) and, for STLR, by adapt (elmo/task/adapt.py):

* **Slanted triangular learning rates** (eq. 3): a short linear warm-up to the peak over
  ``cut_frac`` of the steps, then a long linear decay to ``peak / ratio``.
* **Discriminative learning rates**: layer group k from the top gets ``lr / factor**k``
  (ULMFiT: factor 2.6), so the lower, more general layers move least.
* **Gradual unfreezing**: in epoch 1 only the task head (group 0) trains; each later epoch unfreezes
  one more biLM group from the top down. A frozen group gets no gradient, so its weights stay
  bit-identical (tests/test_unfreeze.py).

(The classifier's other schedule, ``plateau``, multiplies every group's lr by ``lr_decay`` after an
epoch without a better held-out macro-F1: it depends on the held-out score, so it lives in the loop.)

The biLM's layer groups, top first: [LSTM layer L of both directions], ..., [LSTM layer 1],
[the char-CNN token encoder]. Its softmax is not part of a classifier and is never trained here.
This module is in elmo/train, so a change here discards pretrain's checkpoints (their code hash).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

SCHEDULES = ("constant", "linear", "cosine")  # pretrain.presets.*.train.schedule


def warmup_decay(step: int, *, warmup_steps: int, max_steps: int, schedule: str, min_lr_ratio: float) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-based): linear warmup over ``warmup_steps``
    (step 0 gets 1 / warmup_steps), then ``schedule`` (constant, linear or cosine) from 1 down to
    ``min_lr_ratio`` at ``max_steps`` (and after it)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    lo = min_lr_ratio
    if schedule == "linear":
        return 1.0 - (1.0 - lo) * progress
    if schedule == "cosine":
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def slanted_triangular(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-based) of ``total`` steps (ULMFiT eq. 3)."""
    if total < 1:
        raise ValueError(f"total steps must be >= 1, got {total}")
    cut = max(1, int(total * cut_frac))
    t = min(step, total - 1)
    p = t / cut if t < cut else 1.0 - (t - cut) / max(1, total - cut)
    return (1.0 + p * (ratio - 1.0)) / ratio


def discriminative_lrs(lr: float, n_groups: int, factor: float = 2.6, top_scale: float = 1.0) -> list[float]:
    """Peak lrs of the head (``lr``) and of ``n_groups`` biLM groups, top first: ``lr * top_scale / factor**k``."""
    return [lr] + [lr * top_scale / factor ** k for k in range(n_groups)]


def bilm_layer_groups(bilm) -> list[list[nn.Parameter]]:
    """The biLM's trainable groups, top first (the softmax excluded)."""
    n = len(bilm.forward_lm.layers)
    groups = [list(bilm.forward_lm.layers[i].parameters()) + list(bilm.backward_lm.layers[i].parameters())
              for i in reversed(range(n))]
    groups.append(list(bilm.token_encoder.parameters()))
    return groups


@dataclass(frozen=True)
class UnfreezePlan:
    """Which groups train in which epoch, and at what peak learning rate."""

    n_groups: int  # biLM groups (the task head is group 0 and always trains)
    lr: float  # the head's peak learning rate
    factor: float = 2.6  # discriminative: group k (1 = top biLM group) gets lr * bilm_lr_scale / factor**(k-1)
    bilm_lr_scale: float = 1.0  # the top biLM group's lr relative to the head's
    gradual: bool = True  # false: every group trains from epoch 1

    def group_lrs(self) -> list[float]:
        """Peak lr of group 0 (head), 1 (top biLM group), ..., n_groups (token encoder)."""
        return discriminative_lrs(self.lr, self.n_groups, self.factor, self.bilm_lr_scale)

    def trainable(self, epoch: int) -> list[bool]:
        """Per biLM group (top first), whether it trains in ``epoch`` (1-based); the head always does."""
        if not self.gradual:
            return [True] * self.n_groups
        return [k < epoch - 1 for k in range(self.n_groups)]


def set_trainable(groups: list[list[nn.Parameter]], flags: list[bool]) -> None:
    """requires_grad per biLM group (a frozen parameter gets no gradient, so Adam leaves it untouched).

    Only the biLM's groups are switched: the head's own flags (e.g. a fixed γ) are never touched.
    """
    for params, on in zip(groups, flags, strict=True):
        for p in params:
            p.requires_grad_(on)

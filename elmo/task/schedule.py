"""ULMFiT's training recipe for a pretrained LM inside a classifier (Howard & Ruder 2018, §3.2-3.3).

* **Slanted triangular learning rates** (eq. 3): a short linear warm-up to the peak over
  ``cut_frac`` of the steps, then a long linear decay to ``peak / ratio``.
* **Discriminative learning rates**: layer group k from the top gets ``lr / factor**k``
  (ULMFiT: factor 2.6), so the lower, more general layers move least.
* **Gradual unfreezing**: in epoch 1 only the task head (group 0) trains; each later epoch unfreezes
  one more biLM group from the top down. A frozen group gets no gradient, so its weights stay
  bit-identical (tests/test_unfreeze.py).

The biLM's layer groups, top first: [LSTM layer L of both directions], ..., [LSTM layer 1],
[the char-CNN token encoder]. Its softmax is not part of a classifier and is never trained here.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


def slanted_triangular(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """The multiplier of the peak learning rate at ``step`` (0-based) of ``total`` steps (ULMFiT eq. 3)."""
    if total < 1:
        raise ValueError(f"total steps must be >= 1, got {total}")
    cut = max(1, int(total * cut_frac))
    t = min(step, total - 1)
    p = t / cut if t < cut else 1.0 - (t - cut) / max(1, total - cut)
    return (1.0 + p * (ratio - 1.0)) / ratio


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
        return [self.lr] + [self.lr * self.bilm_lr_scale / self.factor ** k for k in range(self.n_groups)]

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

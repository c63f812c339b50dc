"""Training the task model: length-bucketed batches, Adam, early stopping on a held-out slice.

A frozen biLM's layers come from a :class:`elmo.embed.cache.LayerCache` (computed once, read
every epoch); a :class:`~elmo.task.model.BiLMTaskModel` runs its biLM in the forward pass and may
train it (elmo/train/schedule.py: discriminative rates, gradual unfreezing, slanted triangular
schedule). The state with the best macro-F1 on the held-out slice of the train split is kept (model
selection; the dev set is never seen in training); training stops after ``patience`` epochs
without improvement. Every epoch prints one line and reports its
numbers to ``on_epoch`` (MLflow, the DVC plots).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from elmo.budget import CLOCK, EARLY_STOP, EPOCHS
from elmo.data.sampler import length_batches
from elmo.task.loop import TrainLoop
from elmo.task.metrics import probs_metrics
from elmo.task.model import TaskModel
from elmo.train.schedule import UnfreezePlan, bilm_layer_groups, set_trainable, slanted_triangular


@dataclass
class TaskData:
    """One split, encoded: task word ids per text, label ids, and (optionally) its cached biLM layers."""

    words: list[np.ndarray]  # per text (n_i,) task word ids
    labels: np.ndarray  # (N,) label ids
    layers: Any = None  # LayerCache (cache[i] is (n_i, L+1, 2P)) or None
    tokens: list[list[str]] | None = None  # per text its tokens (a BiLMTaskModel encodes their characters)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.labels):
            raise ValueError(f"{len(self.words)} texts but {len(self.labels)} labels")
        if any(len(w) == 0 for w in self.words):
            raise ValueError("every text needs at least one token")
        if self.tokens is not None and [len(t) for t in self.tokens] != [len(w) for w in self.words]:
            raise ValueError("the token lists do not match the texts (lengths differ)")
        if self.layers is not None:
            if len(self.layers) != len(self.words) or not np.array_equal(
                    self.layers.lengths(), [len(w) for w in self.words]):
                raise ValueError("the cached biLM layers do not match the texts (lengths differ)")

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: Sequence[int], with_elmo: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(elmo (B, L+1, T, 2P) or None, words (B, T), mask (B, T))."""
        lens = [len(self.words[i]) for i in idx]
        T = max(lens)
        words = np.zeros((len(idx), T), dtype=np.int64)
        for b, i in enumerate(idx):
            words[b, :lens[b]] = self.words[i]
        mask = torch.arange(T).unsqueeze(0) < torch.tensor(lens).unsqueeze(1)
        elmo = None
        if with_elmo:
            if self.layers is None:
                raise ValueError("this model uses ELMo but the data has no biLM layers")
            elmo, _ = self.layers.padded(idx)
        return elmo, torch.from_numpy(words), mask


def make_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Batches of similar length (elmo.data.sampler.length_batches). With ``rng``: shuffled, then sorted
    by length within pools of 50 batches, and the batches shuffled; without: in length order (for evaluation)."""
    return length_batches(lengths, batch_size=batch_size, rng=rng, pool=None if rng is None else batch_size * 50)


@torch.no_grad()
def predict_proba(model: TaskModel, data: TaskData, batch_size: int = 256) -> np.ndarray:
    """(N, K) class probabilities in data order."""
    model.eval()
    out = np.zeros((len(data), model.cfg.n_classes), dtype=np.float32)
    for idx in make_batches([len(w) for w in data.words], batch_size, None):
        logits = model(*model.batch_inputs(data, idx))
        out[idx] = torch.softmax(logits, dim=-1).numpy()
    return out


@dataclass
class FitResult:
    best_epoch: int
    best_heldout: dict[str, Any]  # classification_metrics of the selected epoch on the held-out slice
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    ended_by: str = EPOCHS  # early_stop (patience ran out before max_epochs) | clock (max_seconds) | epochs

    @property
    def stopped_early(self) -> bool:
        return self.ended_by == EARLY_STOP

    @property
    def out_of_time(self) -> bool:
        """The opt-in time budget (max_seconds) ended training before max_epochs."""
        return self.ended_by == CLOCK


@dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` trains (``finetune.train``, plus the schedule of the biLM mode)."""

    batch_size: int
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int
    grad_clip: float
    seed: int
    lr_decay: float = 1.0  # plateau schedule: lr x this after an epoch without a better held-out macro-F1
    max_seconds: float | None = None  # opt-in clock: no epoch starts that would end past it (None/0: none)
    schedule: str = "plateau"  # plateau | stlr (slanted triangular, per step; lr_decay unused)
    stlr_cut_frac: float = 0.1
    stlr_ratio: float = 32.0

    def __post_init__(self) -> None:
        if self.schedule not in ("plateau", "stlr"):
            raise ValueError(f"schedule must be plateau or stlr, got {self.schedule!r}")


def evaluate(model: TaskModel, data: TaskData, labels: list[str], batch_size: int = 256) -> tuple[dict, float]:
    probs = predict_proba(model, data, batch_size)
    loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp(min=1e-12)),
                                        torch.from_numpy(data.labels)).item())
    return probs_metrics(data.labels, probs, labels), loss


def make_optimizer(model, opts: FitOptions, unfreeze: UnfreezePlan | None):
    """Adam over the head (and, with a plan, one param group per biLM layer group at its own lr)."""
    if unfreeze is None:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=opts.lr, weight_decay=opts.weight_decay), None
    groups = bilm_layer_groups(model.bilm)
    if len(groups) != unfreeze.n_groups:
        raise ValueError(f"the unfreeze plan has {unfreeze.n_groups} groups, the biLM {len(groups)}")
    head = [p for p in model.head.parameters() if p.requires_grad]
    lrs = unfreeze.group_lrs()
    param_groups = [{"params": head, "lr": lrs[0], "name": "head"}]
    param_groups += [{"params": g, "lr": lr, "name": f"bilm{k}"} for k, (g, lr) in enumerate(zip(groups, lrs[1:]))]
    for p in model.bilm.softmax.parameters():  # not part of a classifier
        p.requires_grad_(False)
    return torch.optim.Adam(param_groups, weight_decay=opts.weight_decay), groups


def fit(model: TaskModel, train: TaskData, heldout: TaskData, labels: list[str], *, name: str = "model",
        unfreeze: UnfreezePlan | None = None, on_epoch: Callable[[dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print, **options: Any) -> FitResult:
    """Train ``model`` in place; on return it holds the state of its best held-out macro-F1 epoch.

    ``options`` are :class:`FitOptions`' fields. ``heldout`` is a slice of the train split (never
    the dev set): the epoch is chosen on it. With the plateau schedule, after an epoch without a
    better held-out macro-F1 the learning rate is multiplied by ``lr_decay``; after ``patience``
    such epochs in a row training stops. ``unfreeze`` (a :class:`BiLMTaskModel` only): discriminative
    learning rates per biLM layer group and gradual unfreezing, top group first.
    """
    opts = FitOptions(**options)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    opt, groups = make_optimizer(model, opts, unfreeze)
    lengths = [len(w) for w in train.words]
    total_steps = opts.max_epochs * len(make_batches(lengths, opts.batch_size, None))
    stlr = (lambda step: slanted_triangular(step, total_steps, opts.stlr_cut_frac, opts.stlr_ratio)) \
        if opts.schedule == "stlr" else None
    loop = TrainLoop(opt, grad_clip=opts.grad_clip, lr_factor=stlr, max_epochs=opts.max_epochs,
                     max_seconds=opts.max_seconds, log=log, name=name)
    best_f1, best_state, best_epoch, best_metrics = -1.0, None, 0, None
    history: list[dict[str, float]] = []
    bad_epochs = 0
    for epoch in loop.epochs():
        t0 = time.perf_counter()
        if groups is not None:
            flags = unfreeze.trainable(epoch)
            set_trainable(groups, flags)
            log(f"{name} epoch {epoch}: biLM groups trained (top first): {flags}")
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        batches = make_batches(lengths, opts.batch_size, rng)
        with loop.progress(f"{name} epoch {epoch}", len(batches), leave=False):
            for idx in loop.take(batches):
                y = torch.from_numpy(train.labels[idx])
                loss, logits = loop.step(lambda: classify(model, train, idx, y))
                total_loss += loss * len(idx)
                correct += int((logits.argmax(-1) == y).sum())
                seen += len(idx)
        train_s = time.perf_counter() - t0
        metrics, heldout_loss = evaluate(model, heldout, labels)
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": total_loss / seen,
               "train_acc": correct / seen, "heldout_loss": heldout_loss, "heldout_macro_f1": metrics["macro_f1"],
               "heldout_acc": metrics["accuracy"], "epoch_s": time.perf_counter() - t0, "train_s": train_s}
        history.append(row)
        improved = row["heldout_macro_f1"] > best_f1
        log(f"{name} epoch {epoch}/{opts.max_epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
            f" | held-out loss {heldout_loss:.4f} macro-F1 {row['heldout_macro_f1']:.4f} acc {row['heldout_acc']:.4f}"
            f" | {row['epoch_s']:.1f}s{' *' if improved else ''}")
        if on_epoch is not None:
            on_epoch(row)
        if improved:
            best_f1, best_epoch, best_metrics = row["heldout_macro_f1"], epoch, metrics
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= opts.patience:
                loop.stop_early()
                break
            if opts.schedule == "plateau":
                for group in opt.param_groups:
                    group["lr"] *= opts.lr_decay
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch=best_epoch, best_heldout=best_metrics, history=history,
                     seconds=loop.clock.elapsed(), ended_by=loop.ended_by)


def classify(model: TaskModel, data: TaskData, idx: np.ndarray, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of items ``idx`` (cross-entropy against ``y``), and their logits."""
    logits = model(*model.batch_inputs(data, idx))
    return nn.functional.cross_entropy(logits, y), logits

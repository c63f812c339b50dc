"""Training the task model: length-bucketed batches, Adam, early stopping on dev macro-F1.

The biLM layers come from a :class:`elmo.embed.cache.LayerCache` (computed once, read every
epoch). The model state with the best dev macro-F1 is kept (model selection); training stops
after ``patience`` epochs without improvement. Every epoch prints one line and reports its
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

from elmo.task.metrics import classification_metrics
from elmo.task.model import TaskModel


@dataclass
class TaskData:
    """One split, encoded: task word ids per text, label ids, and (optionally) its cached biLM layers."""

    words: list[np.ndarray]  # per text (n_i,) task word ids
    labels: np.ndarray  # (N,) label ids
    layers: Any = None  # LayerCache (cache[i] is (n_i, L+1, 2P)) or None

    def __post_init__(self) -> None:
        if len(self.words) != len(self.labels):
            raise ValueError(f"{len(self.words)} texts but {len(self.labels)} labels")
        if any(len(w) == 0 for w in self.words):
            raise ValueError("every text needs at least one token")
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
    """Batches of similar length. With ``rng``: shuffled, then sorted by length within chunks of
    50 batches, and the batches shuffled; without: in length order (for evaluation)."""
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    parts = [c[np.argsort(lengths[c], kind="stable")]
             for c in (order[i:i + chunk] for i in range(0, len(order), chunk))]
    order = np.concatenate(parts)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def predict_proba(model: TaskModel, data: TaskData, batch_size: int = 256) -> np.ndarray:
    """(N, K) class probabilities in data order."""
    model.eval()
    out = np.zeros((len(data), model.cfg.n_classes), dtype=np.float32)
    for idx in make_batches([len(w) for w in data.words], batch_size, None):
        logits = model(*data.batch(idx, model.cfg.use_elmo))
        out[idx] = torch.softmax(logits, dim=-1).numpy()
    return out


@dataclass
class FitResult:
    best_epoch: int
    best_dev: dict[str, Any]  # classification_metrics of the selected epoch
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False  # patience ran out before max_epochs
    out_of_time: bool = False  # the time budget (max_seconds) ended training before max_epochs


def evaluate(model: TaskModel, data: TaskData, labels: list[str], batch_size: int = 256) -> tuple[dict, float]:
    probs = predict_proba(model, data, batch_size)
    loss = float(nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp(min=1e-12)),
                                        torch.from_numpy(data.labels)).item())
    y_pred = [labels[i] for i in probs.argmax(axis=1)]
    y_true = [labels[i] for i in data.labels]
    return classification_metrics(y_true, y_pred, labels), loss


def fit(model: TaskModel, train: TaskData, dev: TaskData, labels: list[str], *, batch_size: int, lr: float,
        weight_decay: float, max_epochs: int, patience: int, grad_clip: float, seed: int,
        lr_decay: float = 1.0, max_seconds: float = 0.0, name: str = "model",
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        log: Callable[[str], None] = print) -> FitResult:
    """Train ``model`` in place; on return it holds the state of its best dev macro-F1 epoch.

    After an epoch without a better dev macro-F1 the learning rate is multiplied by ``lr_decay``;
    after ``patience`` such epochs in a row training stops.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    lengths = [len(w) for w in train.words]
    best_f1, best_state, best_epoch, best_dev = -1.0, None, 0, None
    history: list[dict[str, float]] = []
    bad_epochs, start, stopped, out_of_time = 0, time.perf_counter(), False, False
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        batches = make_batches(lengths, batch_size, rng)
        for idx in tqdm(batches, desc=f"{name} epoch {epoch}", unit="batch", leave=False, mininterval=2.0):
            elmo, words, mask = train.batch(idx, model.cfg.use_elmo)
            y = torch.from_numpy(train.labels[idx])
            logits = model(elmo, words, mask)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(idx)
        train_s = time.perf_counter() - t0
        dev_metrics, dev_loss = evaluate(model, dev, labels)
        row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": total_loss / seen,
               "train_acc": correct / seen,
               "dev_loss": dev_loss, "dev_macro_f1": dev_metrics["macro_f1"], "dev_acc": dev_metrics["accuracy"],
               "epoch_s": time.perf_counter() - t0, "train_s": train_s}
        history.append(row)
        improved = row["dev_macro_f1"] > best_f1
        log(f"{name} epoch {epoch}/{max_epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
            f"dev loss {dev_loss:.4f} macro-F1 {row['dev_macro_f1']:.4f} acc {row['dev_acc']:.4f} | "
            f"{row['epoch_s']:.1f}s{' *' if improved else ''}")
        if on_epoch is not None:
            on_epoch(row)
        if improved:
            best_f1, best_epoch, best_dev = row["dev_macro_f1"], epoch, dev_metrics
            best_state = copy.deepcopy(model.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= patience:
                stopped = epoch < max_epochs
                break
            for group in opt.param_groups:
                group["lr"] *= lr_decay
        elapsed = time.perf_counter() - start
        if max_seconds and epoch < max_epochs and elapsed + row["epoch_s"] > max_seconds:
            log(f"{name}: stopping after epoch {epoch}: another epoch would pass the time budget "
                f"({elapsed:.0f}s used of {max_seconds:.0f}s)")
            out_of_time = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch=best_epoch, best_dev=best_dev, history=history,
                     seconds=time.perf_counter() - start, stopped_early=stopped, out_of_time=out_of_time)

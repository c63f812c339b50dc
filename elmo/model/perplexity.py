"""Perplexity of a biLM: the one function that turns summed NLLs and target counts into perplexities
(:func:`perplexity`, :func:`perplexities`) and the one exact (full-softmax) evaluation loop over a
fixed set of batches (:func:`exact_losses`). Pretrain's validation (elmo/train/module.py), its final
valid/test perplexities and drift report (elmo/train/evaluate.py, elmo/train/drift.py) and adapt's
held-out task-text perplexity (elmo/task/adapt.py) all use them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator

import torch
from tqdm import tqdm


def perplexity(nll: float, n: float = 1) -> float:
    """exp(mean NLL): ``nll`` summed over ``n`` targets (fewer than 1 counts as 1); ``n`` = 1 for a mean loss."""
    return math.exp(nll / max(n, 1))


def perplexities(nll_fwd: float, n_fwd: float, nll_bwd: float, n_bwd: float) -> dict[str, float]:
    """Per-direction and average perplexity from summed NLLs and target counts: ``ppl`` = exp of the
    mean of the two directions' mean NLLs (``loss``)."""
    lf, lb = nll_fwd / max(n_fwd, 1), nll_bwd / max(n_bwd, 1)
    loss = 0.5 * (lf + lb)
    return {"loss": loss, "ppl_fwd": perplexity(nll_fwd, n_fwd), "ppl_bwd": perplexity(nll_bwd, n_bwd),
            "ppl": perplexity(loss), "tokens": n_fwd}


@torch.no_grad()
def exact_losses(model, batches: Iterable, *, device: str | torch.device = "cpu", bf16: bool = False,
                 desc: str = "eval", progress: bool = True) -> Iterator:
    """The exact (full-softmax) loss of each batch of ``model`` (a :class:`~elmo.model.BiLM`: its
    ``loss(..., exact=True)``), in eval mode and without gradients; its training mode is restored at the end."""
    was_training = model.training
    model.eval()
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    total = len(batches) if hasattr(batches, "__len__") else None
    try:
        with tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False) as bar, autocast:
            for batch in batches:
                batch = batch.to(device)
                yield model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets, exact=True)
                bar.update(1)
    finally:
        model.train(was_training)

"""Exact (full-softmax) perplexity of a biLM over a fixed set of batches, outside Lightning."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from tqdm import tqdm

from elmo.model import BiLM
from elmo.train.module import perplexities


@torch.no_grad()
def evaluate(model: BiLM, batches: Iterable, *, device: str | torch.device = "cpu", bf16: bool = False,
             desc: str = "eval", progress: bool = True) -> dict[str, float]:
    """Perplexity per direction and averaged (see :func:`elmo.train.module.perplexities`)."""
    was_training = model.training
    model.eval()
    sums = [0.0, 0, 0.0, 0]
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    total = len(batches) if hasattr(batches, "__len__") else None
    with tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False) as bar, autocast:
        for batch in batches:
            batch = batch.to(device)
            res = model.loss(model(batch.chars, batch.mask), batch.fwd_targets, batch.bwd_targets, exact=True)
            sums[0] += float(res.nll_fwd)
            sums[1] += res.n_fwd
            sums[2] += float(res.nll_bwd)
            sums[3] += res.n_bwd
            bar.update(1)
    model.train(was_training)
    return perplexities(*sums)

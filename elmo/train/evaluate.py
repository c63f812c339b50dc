"""Exact (full-softmax) perplexity of a biLM over a fixed set of batches, outside Lightning."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
from tqdm import tqdm

from elmo.log import get_logger
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


def split_perplexity(model: BiLM, dataset, split: str, *, batch_tokens: int, max_tokens: int | None,
                     device: str | torch.device = "cpu", bf16: bool = False) -> dict:
    """Exact perplexities of a whole split, or of a fixed sample of ``max_tokens`` tokens of it
    (elmo.train.datamodule.valid_batches), with the token and sentence counts; one console line."""
    from elmo.train.datamodule import valid_batches

    batches = valid_batches(dataset, batch_tokens, max_tokens=max_tokens)
    m = evaluate(model, batches, device=device, bf16=bf16, desc=f"{split} perplexity")
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
    out["tokens"] = int(m["tokens"])
    out["sentences"] = sum(len(b) for b in batches.batches)
    get_logger("pretrain").info(f"{split}: perplexity {m['ppl']:.2f} (forward {m['ppl_fwd']:.2f}, "
                                f"backward {m['ppl_bwd']:.2f}) on {out['tokens']:,} tokens")
    return out

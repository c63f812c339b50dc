"""Exact (full-softmax) perplexity of a biLM over a fixed set of batches, outside Lightning: the loop
and the formulas are elmo/model/perplexity.py's; here the per-direction sums and a split's report."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from elmo.log import get_logger
from elmo.model import BiLM
from elmo.model.perplexity import exact_losses, perplexities
from elmo.train.datamodule import valid_batches


def evaluate(model: BiLM, batches: Iterable, *, device: str | torch.device = "cpu", bf16: bool = False,
             desc: str = "eval", progress: bool = True) -> dict[str, float]:
    """Perplexity per direction and averaged (:func:`perplexities`), NLLs summed per direction."""
    sums = [0.0, 0, 0.0, 0]
    for res in exact_losses(model, batches, device=device, bf16=bf16, desc=desc, progress=progress):
        sums[0] += float(res.nll_fwd)
        sums[1] += res.n_fwd
        sums[2] += float(res.nll_bwd)
        sums[3] += res.n_bwd
    return perplexities(*sums)


def split_perplexity(model: BiLM, dataset, split: str, *, batch_tokens: int, max_tokens: int | None,
                     device: str | torch.device = "cpu", bf16: bool = False) -> dict:
    """Exact perplexities of a whole split, or of a fixed sample of ``max_tokens`` tokens of it
    (elmo.train.datamodule.valid_batches), with the token and sentence counts; one console line."""
    batches = valid_batches(dataset, batch_tokens, max_tokens=max_tokens)
    m = evaluate(model, batches, device=device, bf16=bf16, desc=f"{split} perplexity")
    out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
    out["tokens"] = int(m["tokens"])
    out["sentences"] = sum(len(b) for b in batches.batches)
    get_logger("pretrain").info(f"{split}: perplexity {m['ppl']:.2f} (forward {m['ppl_fwd']:.2f}, "
                                f"backward {m['ppl_bwd']:.2f}) on {out['tokens']:,} tokens")
    return out

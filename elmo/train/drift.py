"""The months a biLM has seen, and the drift report of a biLM meeting months it has never seen.

A petition's month is the month file of clean's table row (``source_file``, ``petitions_YYYY-MM``:
the file of its latest snapshot, clean's dedupe rule); a sentence's month is its petition's (the
arrays' ``keys``). A saved biLM records the months of the corpus it was trained on (``meta.months``
in its config.json).

The drift text is the valid split's sentences of the months the previous biLM has never seen, at most
``max_tokens`` tokens in all (an equal share per month; a fixed, seeded sample). On it:
exact perplexity (both directions, and each) and the OOV rate (tokens that are ``<unk>`` targets in
the model's word vocabulary), per month and overall — of the previous biLM before training, and of
the new biLM after, on the same sentences.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from elmo.data.loader import SentenceSubset
from elmo.errors import StageError
from elmo.log import get_logger
from elmo.model.perplexity import perplexity
from elmo.train.datamodule import FixedBatches, collate_indices, valid_batches
from elmo.train.evaluate import evaluate
from elmo.vocab.words import UNK_ID

MONTH_PREFIX = "petitions_"  # clean's source_file names a month file (elmo.crawl.source.month_of)

log = get_logger("pretrain")


def petition_months(path: Path) -> pl.DataFrame:
    """(petition_idx, month) of every petition in clean's table."""
    try:
        df = pl.read_parquet(path, columns=["petition_idx", "source_file"])
    except (OSError, pl.exceptions.PolarsError) as err:
        raise StageError(f"{path}: cannot read petition_idx, source_file ({err}); rerun `elmo clean`") from None
    return df.select("petition_idx", month=pl.col("source_file").str.strip_prefix(MONTH_PREFIX))


def sentence_months(dataset, months: pl.DataFrame, where: Path) -> np.ndarray:
    """The month of each sentence of ``dataset`` (an elmo.data SentenceDataset), by its petition."""
    keys = pl.DataFrame({"petition_idx": np.asarray(dataset.arrays.keys)[:, 0]})
    joined = keys.join(months, on="petition_idx", how="left", maintain_order="left")["month"]
    if joined.null_count():
        first = int(keys["petition_idx"][int(joined.is_null().arg_true()[0])])
        raise StageError(f"{where}: petition {first} of the training arrays is not in it "
                         "(the arrays come from another clean run: rerun clean, tokenize, vocab)")
    return joined.to_numpy().astype(str)


def drift_text(valid, months_of: np.ndarray, seen: list[str], *, batch_tokens: int,
               max_tokens: int | None) -> dict[str, list[np.ndarray]]:
    """Month -> batches (valid-split sentence indices) of the valid sentences of the months not in ``seen``."""
    new = sorted(set(months_of.tolist()) - set(seen))
    cap = math.ceil(max_tokens / len(new)) if max_tokens and new else None
    out = {}
    for month in new:
        idx = np.flatnonzero(months_of == month)
        plan = valid_batches(SentenceSubset(valid, idx), batch_tokens, max_tokens=cap)
        out[month] = [idx[b] for b in plan.batches]
    return out


def measure(model, dataset, text: dict[str, list[np.ndarray]], *, device, bf16: bool) -> dict:
    """Perplexity and OOV rate of ``model`` (with ``dataset``'s vocabulary) on ``text``, per month and overall."""
    months, sums = {}, np.zeros(5)  # tokens x loss_fwd, tokens x loss_bwd, targets, words, oov
    for month, batches in text.items():
        fixed = FixedBatches(batches, collate_indices(dataset), dataset.lengths)
        m = evaluate(model, fixed, device=device, bf16=bf16, desc=f"drift {month}")
        ids = np.concatenate([dataset[int(i)] for b in batches for i in b])
        oov = int((dataset.arrays.type_words[ids] == UNK_ID).sum())
        months[month] = _row(math.log(m["ppl_fwd"]), math.log(m["ppl_bwd"]), len(ids), oov,
                             sum(len(b) for b in batches))
        n = m["tokens"]
        sums += (n * math.log(m["ppl_fwd"]), n * math.log(m["ppl_bwd"]), n, len(ids), oov)
    overall = (_row(sums[0] / sums[2], sums[1] / sums[2], int(sums[3]), int(sums[4]),
                    sum(r["sentences"] for r in months.values())) if sums[2] else None)
    return {"overall": overall, "months": months}


def _row(loss_fwd: float, loss_bwd: float, tokens: int, oov: int, sentences: int) -> dict:
    """A report row from the mean NLL of each direction."""
    return {"ppl": round(perplexity(0.5 * (loss_fwd + loss_bwd)), 4), "ppl_fwd": round(perplexity(loss_fwd), 4),
            "ppl_bwd": round(perplexity(loss_bwd), 4), "oov_rate": round(oov / tokens, 6) if tokens else None,
            "tokens": tokens, "sentences": sentences}


def mlflow_metrics(drift: dict) -> dict[str, float]:
    """``drift/<before|after>/<overall|month>/<ppl|ppl_fwd|ppl_bwd|oov_rate>`` of a drift report."""
    out = {}
    for when in ("before", "after"):
        res = drift.get(when) or {}
        rows = {"overall": res.get("overall"), **res.get("months", {})}
        for name, row in rows.items():
            for k in ("ppl", "ppl_fwd", "ppl_bwd", "oov_rate"):
                if row and isinstance(row.get(k), float) and math.isfinite(row[k]):
                    out[f"drift/{when}/{name}/{k}"] = row[k]
    return out


def plan_drift(prev, no_prev: str, months, scratch_valid, batch_tokens: int, max_tokens: int | None, petitions: Path):
    """(month -> valid batches of the months the previous biLM never saw, the drift report so far);
    no batches when there is no previous biLM (``no_prev`` says why), it records no months, or there
    is no month table (``petitions``). ``batch_tokens``, ``max_tokens``: the preset's ``batch_tokens``
    and ``eval_max_tokens``."""
    if prev is None or months is None or prev.months is None:
        why = (no_prev if prev is None else "no month table (pretrain.petitions)" if months is None
               else "the previous biLM does not record its months")
        return {}, {"available": False, "reason": why}
    months_of = sentence_months(scratch_valid, months, petitions)
    text = drift_text(scratch_valid, months_of, prev.months, batch_tokens=batch_tokens, max_tokens=max_tokens)
    report = {"available": True, "seen_months": prev.months, "new_months": sorted(text),
              "text": "valid-split sentences of the new months"
                      + (f", at most {max_tokens:,} tokens in all" if max_tokens else ""),
              "before": None, "after": None}
    if not text:
        log.info("drift: the corpus has no month the previous biLM has not seen")
    return text, report


def seen_months(prev, months) -> list[str] | None:
    """The months the new biLM has seen: the corpus's, plus those of the biLM it continued."""
    if months is None:
        return None
    return sorted(set(months["month"].unique().to_list()) | set((prev.months or []) if prev else []))


def drift_line(res: dict) -> str:
    """One log line of a :func:`measure` result."""
    o = res["overall"]
    per = ", ".join(f"{m} {r['ppl']:.1f}" for m, r in res["months"].items())
    return f"perplexity {o['ppl']:.2f} ({per}), OOV rate {o['oov_rate']:.2%} on {o['tokens']:,} tokens"

"""Stage tokenize: clean petitions → sentences of tokens, one parquet per split.

Reads ``tokenize.in_parquet`` (the clean stage's output), analyses the configured fields of every
petition in parallel (``tokenize.workers`` processes) and writes, atomically as one directory:

* ``{out_dir}/{train,valid,test}.parquet`` — ``petition_idx``, ``sentence_idx``, ``tokens``; rows
  sorted by petition then sentence, so the output is byte-identical for the same input and params,
* ``{out_dir}/tokenizer.json`` — the tokenizer config and dictionary/library versions,

plus ``tokenize.metrics`` (counts per split; timings go to the report only, so the metrics file is
deterministic too).

The same work can be fanned out over a cluster (flows/fanout.py's shard protocol):
``plan_shards`` → ``run_shard`` for each (writes ``{out_dir}.shards/NNNNN/``) → ``finish_shards``
(merges the parts into ``out_dir``). ``run`` gives exactly the bytes of that path; it just streams
the shards through a local process pool instead of through files. The work is in
``elmo.text.corpus`` and ``elmo.text.parallel``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json
from elmo.stages import stage_report
from elmo.text import corpus
from elmo.text.parallel import resolve_workers
from elmo.text.pipeline import TextPipeline
from elmo.text.tokenizer import Tokenizer
from elmo.workspace_lock import stage_lock


def _finish(params, in_path: Path, n_petitions: int, tmp_out: Path, stats: dict) -> dict:
    """Check the totals, write tokenizer.json and text_pipeline.json into the (temporary) output; the
    metrics."""
    p = params.tokenize
    total = corpus.total_counts(stats)
    if total["tokens"] == 0:
        raise StageError(f"{in_path}: no tokens at all in fields {', '.join(p.fields)} of {n_petitions} petitions")
    tokenizer = Tokenizer.from_params(p)
    corpus.write_tokenizer_file(tmp_out, tokenizer, list(p.fields), p.tagger)
    TextPipeline.from_params(params.clean, p).save(tmp_out)  # the corpus's: clean's normaliser + this tokenizer
    return {"tokenizer": tokenizer.config(), "fields": list(p.fields), "splits": stats, "total": total}


def _report(params, root: Path, metrics: dict, seconds: float, workers: int | str, leftovers: int) -> dict:
    atomic_write_json(root / params.tokenize.metrics, metrics)
    chars = metrics["total"]["chars"]
    return stage_report("tokenize", params, {
        "workers": workers, "seconds": round(seconds, 2),
        "chars_per_s": round(chars / seconds) if seconds > 0 else None, **metrics, "leftovers_removed": leftovers})


def run(params, root: Path) -> dict:
    p = params.tokenize
    root = Path(root)
    in_path = root / p.in_parquet
    df = corpus.read_petitions(in_path, list(p.fields))
    workers = resolve_workers(p.workers)
    t0 = time.perf_counter()
    with stage_lock(root, "tokenize"):  # so the temporaries found here are no other run's
        leftovers = corpus.remove_leftovers(root / p.out_dir)
        with atomic_path(root / p.out_dir) as tmp:
            tmp.mkdir()
            stats = corpus.tokenize_rows(df, list(p.fields), Tokenizer.from_params(p), tmp, workers, progress=True)
            metrics = _finish(params, in_path, df.height, tmp, stats)
    return _report(params, root, metrics, time.perf_counter() - t0, workers, leftovers)


# --- the shard protocol of flows/fanout.py (flows.dask.stages names this module) ---------------

def plan_shards(params, root: Path) -> list[dict[str, Any]]:
    p = params.tokenize
    return corpus.plan_shards(corpus.read_petitions(Path(root) / p.in_parquet, list(p.fields)), list(p.fields))


def run_shard(params, root: Path, shard: dict[str, Any]) -> dict[str, Any]:
    """Tokenize one planned row range into ``{out_dir}.shards/NNNNN/{split}.parquet``."""
    p = params.tokenize
    root = Path(root)
    df = corpus.read_petitions(root / p.in_parquet, list(p.fields))
    df = df.slice(shard["start"], shard["stop"] - shard["start"])
    part = corpus.shards_dir(root / p.out_dir) / f"{shard['index']:05d}"
    t0 = time.perf_counter()
    with atomic_path(part) as tmp:
        tmp.mkdir()
        stats = corpus.tokenize_rows(df, list(p.fields), Tokenizer.from_params(p), tmp, workers=1, progress=False)
    return {"index": shard["index"], "of": shard["of"], "dir": str(part), "stats": stats,
            "seconds": round(time.perf_counter() - t0, 3)}


def finish_shards(params, root: Path, results: list[dict[str, Any]]) -> dict:
    """Merge the parts (in shard order) into the stage's outputs; same bytes as :func:`run`."""
    p = params.tokenize
    root = Path(root)
    results = corpus.check_shards(results)
    t0 = time.perf_counter()
    with atomic_path(root / p.out_dir) as tmp:
        tmp.mkdir()
        stats = corpus.merge_shards(results, tmp)
        metrics = _finish(params, root / p.in_parquet, sum(st["petitions"] for st in stats.values()), tmp, stats)
    shutil.rmtree(corpus.shards_dir(root / p.out_dir), ignore_errors=True)
    seconds = time.perf_counter() - t0 + sum(r["seconds"] for r in results)
    return _report(params, root, metrics, seconds, workers=f"{results[0]['of'] if results else 0} shards", leftovers=0)

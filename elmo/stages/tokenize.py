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
the shards through a local process pool instead of through files.
"""

from __future__ import annotations

import math
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from elmo.contracts import SPLITS, TOKENIZER_FILE
from elmo.data.tables import read_parquet_checked, row_label
from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json
from elmo.stages import stage_report
from elmo.text.parallel import STAT_KEYS, merge_parts, resolve_workers, tokenize_to_parquet
from elmo.text.pipeline import TextPipeline
from elmo.text.tokenizer import Tokenizer
from elmo.workspace_lock import stage_lock

FANOUT_SHARD_CHARS = 1_000_000  # characters per fan-out shard (plan_shards)


def read_petitions(path: Path, fields: list[str]) -> pl.DataFrame:
    """The petitions to tokenize, validated, sorted by ``petition_idx``."""
    columns = {"petition_idx": pl.Int64, "split": pl.Utf8, **{f: pl.Utf8 for f in fields}}
    df = read_parquet_checked(path, columns, produced_by="clean", optional=("source_file", "source_line"))
    for col in ("petition_idx", "split"):
        nulls = df[col].is_null()
        if nulls.any():
            i = int(nulls.arg_true()[0])
            raise StageError(f"{path}: {row_label(df, i)}: field {col} is null ({int(nulls.sum())} rows)")
    bad = ~df["split"].is_in(list(SPLITS))
    if bad.any():
        i = int(bad.arg_true()[0])
        raise StageError(f"{path}: {row_label(df, i)}: field split is {df['split'][i]!r}, "
                         f"not one of {', '.join(SPLITS)} ({int(bad.sum())} rows)")
    dup = df["petition_idx"].is_duplicated()
    if dup.any():
        rows = dup.arg_true()[:2].to_list()
        raise StageError(f"{path}: field petition_idx {df['petition_idx'][rows[0]]} appears more than once "
                         f"({row_label(df, rows[0])} and {row_label(df, rows[1])})")
    return df.sort("petition_idx")


def _versions(tagger: str) -> dict[str, str]:
    names = ["konlpy"] + (["mecab-python3", "python-mecab-ko-dic"] if tagger == "mecab" else [])
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _tokenize_rows(p, df: pl.DataFrame, out_dir: Path, workers: int, progress: bool) -> dict:
    return tokenize_to_parquet(
        df["petition_idx"].to_list(), df["split"].to_list(), [df[f].to_list() for f in p.fields],
        Tokenizer.from_params(p), out_dir, workers=workers, progress=progress,
    )


def _finish(params, root: Path, in_path: Path, n_petitions: int, tmp_out: Path, stats: dict) -> dict:
    """Check the totals, write tokenizer.json and text_pipeline.json into the (temporary) output and
    the metrics."""
    p = params.tokenize
    total = {k: sum(st[k] for st in stats.values()) for k in STAT_KEYS}
    if total["tokens"] == 0:
        raise StageError(f"{in_path}: no tokens at all in fields {', '.join(p.fields)} of {n_petitions} petitions")
    tokenizer = Tokenizer.from_params(p)
    atomic_write_json(tmp_out / TOKENIZER_FILE, {
        "tokenizer": tokenizer.config(), "fields": list(p.fields), "versions": _versions(p.tagger),
    })
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
    df = read_petitions(in_path, list(p.fields))
    workers = resolve_workers(p.workers)
    t0 = time.perf_counter()
    with stage_lock(root, "tokenize"):  # so the temporaries found here are no other run's
        leftovers = remove_leftovers(root / p.out_dir)
        with atomic_path(root / p.out_dir) as tmp:
            tmp.mkdir()
            stats = _tokenize_rows(p, df, tmp, workers, progress=True)
            metrics = _finish(params, root, in_path, df.height, tmp, stats)
    return _report(params, root, metrics, time.perf_counter() - t0, workers, leftovers)


def remove_leftovers(out: Path) -> int:
    """Remove the temporary outputs (``.<out_dir name>.*.tmp``, elmo/io.py) of a run that was killed
    (kill -9: no cleanup ran); Ctrl-C and SIGTERM remove their own. Returns how many."""
    n = 0
    for leftover in out.parent.glob(f".{out.name}.*.tmp") if out.parent.is_dir() else ():
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)
        n += 1
    return n


# --- the shard protocol of flows/fanout.py -----------------------------------------------------

def _shards_dir(p, root: Path) -> Path:
    out = root / p.out_dir
    return out.with_name(out.name + ".shards")


def plan_shards(params, root: Path) -> list[dict[str, Any]]:
    """Consecutive row ranges of the sorted petitions, about FANOUT_SHARD_CHARS characters each."""
    p = params.tokenize
    df = read_petitions(Path(root) / p.in_parquet, list(p.fields))
    chars = df.select(pl.sum_horizontal([pl.col(f).str.len_chars().fill_null(0) for f in p.fields])).to_series()
    cum = np.cumsum(chars.to_numpy())
    n = max(1, math.ceil(int(cum[-1]) / FANOUT_SHARD_CHARS))
    cuts = ([0] + [min(int(np.searchsorted(cum, k * FANOUT_SHARD_CHARS)) + 1, df.height) for k in range(1, n)]
            + [df.height])
    bounds = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return [{"index": i, "of": len(bounds), "start": a, "stop": b} for i, (a, b) in enumerate(bounds)]


def run_shard(params, root: Path, shard: dict[str, Any]) -> dict[str, Any]:
    """Tokenize one planned row range into ``{out_dir}.shards/NNNNN/{split}.parquet``."""
    p = params.tokenize
    root = Path(root)
    df = read_petitions(root / p.in_parquet, list(p.fields)).slice(shard["start"], shard["stop"] - shard["start"])
    part = _shards_dir(p, root) / f"{shard['index']:05d}"
    t0 = time.perf_counter()
    with atomic_path(part) as tmp:
        tmp.mkdir()
        stats = _tokenize_rows(p, df, tmp, workers=1, progress=False)
    return {"index": shard["index"], "of": shard["of"], "dir": str(part), "stats": stats,
            "seconds": round(time.perf_counter() - t0, 3)}


def finish_shards(params, root: Path, results: list[dict[str, Any]]) -> dict:
    """Merge the parts (in shard order) into the stage's outputs; same bytes as :func:`run`."""
    p = params.tokenize
    root = Path(root)
    results = sorted(results, key=lambda r: r["index"])
    n = results[0]["of"] if results else 0
    if [r["index"] for r in results] != list(range(n)):
        raise StageError(f"tokenize: shard results {[r['index'] for r in results]} do not cover all {n} shards")
    stats = {s: {k: sum(r["stats"][s][k] for r in results) for k in STAT_KEYS} for s in SPLITS}
    in_path = root / p.in_parquet
    t0 = time.perf_counter()
    with atomic_path(root / p.out_dir) as tmp:
        tmp.mkdir()
        merge_parts([Path(r["dir"]) for r in results], tmp)
        metrics = _finish(params, root, in_path, sum(st["petitions"] for st in stats.values()), tmp, stats)
    shutil.rmtree(_shards_dir(p, root), ignore_errors=True)
    seconds = time.perf_counter() - t0 + sum(r["seconds"] for r in results)
    return _report(params, root, metrics, seconds, workers=f"{n} shards", leftovers=0)

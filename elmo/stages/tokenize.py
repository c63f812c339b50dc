"""Stage tokenize: clean petitions → sentences of tokens, one parquet per split.

Reads ``tokenize.in_parquet`` (the clean stage's output), analyses the configured fields of every
petition in parallel (``tokenize.workers`` processes) and writes, atomically as one directory:

* ``{out_dir}/{train,valid,test}.parquet`` — ``petition_idx``, ``sentence_idx``, ``tokens``; rows
  sorted by petition then sentence, so the output is byte-identical for the same input and params,
* ``{out_dir}/tokenizer.json`` — the tokenizer config and dictionary/library versions,

plus ``tokenize.metrics`` (counts per split; timings go to the report only, so the metrics file is
deterministic too).
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

import polars as pl

from elmo.data.tables import read_parquet_checked, row_label
from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json
from elmo.text.parallel import SPLITS, resolve_workers, tokenize_to_parquet
from elmo.text.tokenizer import Tokenizer

TOKENIZER_FILE = "tokenizer.json"


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


def run(params, root: Path) -> dict:
    p = params.tokenize
    root = Path(root)
    in_path = root / p.in_parquet
    df = read_petitions(in_path, list(p.fields))
    tokenizer = Tokenizer.from_params(p)
    workers = resolve_workers(p.workers)
    out_dir = root / p.out_dir
    t0 = time.perf_counter()
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        stats = tokenize_to_parquet(
            df["petition_idx"].to_list(), df["split"].to_list(), [df[f].to_list() for f in p.fields],
            tokenizer, tmp, workers=workers,
        )
        total = {k: sum(st[k] for st in stats.values()) for k in next(iter(stats.values()))}
        if total["tokens"] == 0:
            raise StageError(f"{in_path}: no tokens at all in fields {', '.join(p.fields)} of {df.height} petitions")
        atomic_write_json(tmp / TOKENIZER_FILE, {
            "tokenizer": tokenizer.config(), "fields": list(p.fields), "versions": _versions(p.tagger),
        })
    seconds = time.perf_counter() - t0
    metrics = {"tokenizer": tokenizer.config(), "fields": list(p.fields), "splits": stats, "total": total}
    atomic_write_json(root / p.metrics, metrics)
    return {
        "stage": "tokenize",
        "out_dir": str(out_dir),
        "metrics": str(root / p.metrics),
        "workers": workers,
        "seconds": round(seconds, 2),
        "chars_per_s": round(total["chars"] / seconds) if seconds > 0 else None,
        **metrics,
    }

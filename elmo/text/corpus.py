"""The tokenize stage's work on the corpus (elmo/stages/tokenize.py orchestrates): the clean
petitions read and checked, the tokenizer's description file, its sentences read and checked (the
vocab stage's input), leftovers of a killed run, and the
fan-out over shards (flows/fanout.py's protocol: plan row ranges, tokenize one range into a part
directory, merge the parts into the same bytes as one run; elmo/text/parallel.py does the work).
"""

from __future__ import annotations

import math
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import polars as pl

from elmo.contracts import SPLITS, TOKENIZER_FILE, sentences_polars_schema
from elmo.data.tables import read_parquet_checked, row_label
from elmo.errors import StageError
from elmo.io import atomic_write_json
from elmo.text.parallel import STAT_KEYS, merge_parts, tokenize_to_parquet
from elmo.text.tokenizer import Tokenizer

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


def read_sentences(path: Path, *, required: bool) -> pl.DataFrame:
    """One split of tokenized sentences, checked: no null or empty token lists, no bad tokens."""
    df = read_parquet_checked(path, sentences_polars_schema(), produced_by="tokenize", allow_empty=not required)
    lens = df["tokens"].list.len()
    bad = df["tokens"].is_null() | (lens == 0)
    if bad.any():
        i = int(bad.arg_true()[0])
        raise StageError(f"{path}: petition {df['petition_idx'][i]} sentence {df['sentence_idx'][i]}: "
                         f"field tokens is empty or null ({int(bad.sum())} rows)")
    flat = df.select(pl.col("tokens").explode())["tokens"]
    bad_tok = flat.is_null() | (flat.str.len_chars() == 0) | flat.str.contains(r"\s")
    if bad_tok.any():
        pos = int(bad_tok.arg_true()[0])
        row = int((lens.cum_sum() <= pos).sum())
        raise StageError(f"{path}: petition {df['petition_idx'][row]} sentence {df['sentence_idx'][row]}: "
                         f"field tokens holds a null, empty or whitespace-containing token {flat[pos]!r}")
    return df


def library_versions(tagger: str) -> dict[str, str]:
    """The installed versions of the tagger's libraries (tokenizer.json records them)."""
    names = ["konlpy"] + (["mecab-python3", "python-mecab-ko-dic"] if tagger == "mecab" else [])
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_tokenizer_file(out_dir: Path, tokenizer: Tokenizer, fields: list[str], tagger: str) -> None:
    atomic_write_json(out_dir / TOKENIZER_FILE, {
        "tokenizer": tokenizer.config(), "fields": list(fields), "versions": library_versions(tagger),
    })


def tokenize_rows(df: pl.DataFrame, fields: list[str], tokenizer: Tokenizer, out_dir: Path, workers: int,
                  progress: bool) -> dict:
    """Per-split counts (``STAT_KEYS``) of tokenizing ``fields`` of ``df`` into ``out_dir``."""
    return tokenize_to_parquet(df["petition_idx"].to_list(), df["split"].to_list(), [df[f].to_list() for f in fields],
                               tokenizer, out_dir, workers=workers, progress=progress)


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


def plan_shards(df: pl.DataFrame, fields: list[str], shard_chars: int | None = None) -> list[dict]:
    """Consecutive row ranges of the sorted petitions, about ``shard_chars`` (``FANOUT_SHARD_CHARS``)
    characters each."""
    shard_chars = shard_chars or FANOUT_SHARD_CHARS
    chars = df.select(pl.sum_horizontal([pl.col(f).str.len_chars().fill_null(0) for f in fields])).to_series()
    cum = np.cumsum(chars.to_numpy())
    n = max(1, math.ceil(int(cum[-1]) / shard_chars))
    cuts = ([0] + [min(int(np.searchsorted(cum, k * shard_chars)) + 1, df.height) for k in range(1, n)]
            + [df.height])
    bounds = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
    return [{"index": i, "of": len(bounds), "start": a, "stop": b} for i, (a, b) in enumerate(bounds)]


def shards_dir(out_dir: Path) -> Path:
    """Where the fan-out's parts go: ``{out_dir}.shards/`` beside the output."""
    return out_dir.with_name(out_dir.name + ".shards")


def check_shards(results: list[dict]) -> list[dict]:
    """The shard results in order; :class:`StageError` unless they cover every planned shard."""
    results = sorted(results, key=lambda r: r["index"])
    n = results[0]["of"] if results else 0
    if [r["index"] for r in results] != list(range(n)):
        raise StageError(f"tokenize: shard results {[r['index'] for r in results]} do not cover all {n} shards")
    return results


def merge_shards(results: list[dict], tmp_out: Path) -> dict:
    """Merge the (checked, ordered) parts into ``tmp_out``; the per-split counts of all of them."""
    merge_parts([Path(r["dir"]) for r in results], tmp_out)
    return {s: {k: sum(r["stats"][s][k] for r in results) for k in STAT_KEYS} for s in SPLITS}


def total_counts(stats: dict) -> dict:
    return {k: sum(st[k] for st in stats.values()) for k in STAT_KEYS}

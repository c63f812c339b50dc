"""clean: raw month files -> one typed, normalised, deduplicated, split table (polars).

Every line of every month in crawl's manifest is read and ends up in exactly one place:

- ``kept``: a row of ``clean.out_parquet`` (columns: elmo.clean.schema.OUTPUT_COLUMNS);
- ``duplicates``: a valid row whose ``petition_idx`` occurs again later. **Rule:** the occurrence
  in the latest month file wins, and within a file the later line — the most recent snapshot of
  a petition (its final status and agreement count); the others are counted per file;
- ``quarantined``: a line of ``clean.quarantine`` (JSON lines: source_file, line, reason, field,
  detail, raw) — see elmo/clean/schema.py for the reasons.

``clean.metrics`` (a DVC metric) holds read = kept + duplicates + quarantined (checked here),
the counts per reason and per split, and what normalisation changed; the report the stage
returns (printed by the CLI) adds the counts per month file.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from elmo.clean.reader import manifest_files, read_manifest, read_month, split_lines
from elmo.clean.schema import OUTPUT_COLUMNS, REASONS, Rejection, parse_record
from elmo.clean.split import assign_splits
from elmo.contracts import SPLITS
from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.params import Params
from elmo.text.normalize import COUNT_KEYS, Normalizer

SCHEMA = {name: getattr(pl, dtype) for name, dtype in OUTPUT_COLUMNS}


def _quarantine_record(source_file: str, line: int, rej: Rejection, raw: bytes) -> dict[str, Any]:
    return {
        "source_file": source_file,
        "line": line,
        "reason": rej.reason,
        "field": rej.field,
        "detail": rej.detail,
        "raw": raw.decode("utf-8", errors="backslashreplace"),
    }


def read_rows(in_dir: Path) -> tuple[pl.DataFrame, list[bytes], list[dict[str, Any]], Counter, int]:
    """Parse every line: (valid rows with raw texts, their raw lines, quarantine records,
    lines read per file, bytes read)."""
    cols: dict[str, list] = {name: [] for name, _ in OUTPUT_COLUMNS if name != "split"}
    raws: list[bytes] = []
    quarantine: list[dict[str, Any]] = []
    read_per_file: Counter = Counter()
    nbytes = 0
    bar = tqdm(manifest_files(in_dir), desc="clean: read", unit="file")
    for name, entry in bar:
        data = read_month(in_dir, name, entry)
        nbytes += len(data)
        for lineno, raw in split_lines(data):
            read_per_file[name] += 1
            rec = parse_record(raw)
            if isinstance(rec, Rejection):
                quarantine.append(_quarantine_record(name, lineno, rec, raw))
                continue
            rec["source_file"], rec["source_line"] = name, lineno
            for key, values in cols.items():
                values.append(rec[key])
            raws.append(raw)
        bar.set_postfix(lines=sum(read_per_file.values()), quarantined=len(quarantine))
    bar.close()
    df = pl.DataFrame(cols, schema={k: SCHEMA[k] for k in cols})
    return df, raws, quarantine, read_per_file, nbytes


def normalise(df: pl.DataFrame, raws: list[bytes], norm: Normalizer) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Normalise the text columns; rows left with neither title nor content are quarantined."""
    df = df.with_columns(norm.series(df[c]).alias(c) for c in ("title", "content", "category", "status"))
    empty = (df["title"] == "") & (df["content"] == "")
    rejected = []
    rej = Rejection("empty_text", "title", "title and content are empty after normalisation")
    for i in empty.arg_true().to_list():
        rejected.append(_quarantine_record(df["source_file"][i], df["source_line"][i], rej, raws[i]))
    return df.filter(~empty), rejected


def deduplicate(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, dropped duplicates): the last occurrence in (source_file, source_line) order wins."""
    df = df.sort(["source_file", "source_line"])
    last = pl.col("petition_idx").is_last_distinct()
    return df.filter(last), df.filter(~last)


def run(params: Params, root: Path) -> dict[str, Any]:
    p = params.clean
    t0 = time.monotonic()
    in_dir = root / p.in_dir
    try:
        norm = Normalizer.from_params(p)
    except ValueError as err:
        raise StageError(str(err)) from None
    missing = sorted(read_manifest(in_dir).get("missing") or [])
    rows, raws, quarantine, read_per_file, nbytes = read_rows(in_dir)
    steps = tqdm(total=3, desc="clean: normalise", unit="step")
    valid, empty = normalise(rows, raws, norm)
    quarantine = sorted(quarantine + empty, key=lambda q: (q["source_file"], q["line"]))
    steps.update(1)
    steps.set_description("clean: deduplicate, split")
    kept, dups = deduplicate(valid)
    kept = kept.with_columns(
        pl.Series("split", assign_splits(kept["petition_idx"], p.valid_fraction, p.test_fraction, p.split_salt),
                  dtype=pl.String)
    ).sort("petition_idx").select(list(SCHEMA))
    steps.update(1)
    steps.set_description("clean: write")

    read = sum(read_per_file.values())
    if read != kept.height + dups.height + len(quarantine):  # the contract; a bug if it ever fails
        raise AssertionError(f"clean: read {read} != kept {kept.height} + duplicates {dups.height} + "
                             f"quarantined {len(quarantine)}")

    with atomic_path(root / p.out_parquet) as tmp:
        kept.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
    atomic_write_text(
        root / p.quarantine, "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in quarantine)
    )
    steps.update(1)
    steps.close()

    reasons = Counter(q["reason"] for q in quarantine)
    by_field = Counter(f"{q['reason']}.{q['field']}" for q in quarantine if q["field"])
    kept_per_file = Counter(kept["source_file"].to_list())
    dups_per_file = Counter(dups["source_file"].to_list())
    q_per_file = Counter(q["source_file"] for q in quarantine)
    split_counts = Counter(kept["split"].to_list())
    per_file = {  # in the report, not the metric: `dvc metrics show` stays readable
        name: {
            "read": n,
            "kept": kept_per_file.get(name, 0),
            "duplicates": dups_per_file.get(name, 0),
            "quarantined": q_per_file.get(name, 0),
        }
        for name, n in sorted(read_per_file.items())
    }
    metrics = {
        "read": read,
        "kept": kept.height,
        "duplicates": dups.height,
        "quarantined": len(quarantine),
        "quarantine_reasons": {r: reasons.get(r, 0) for r in REASONS},
        "quarantine_fields": dict(sorted(by_field.items())),
        "splits": {s: split_counts.get(s, 0) for s in SPLITS},
        "normalisation": {
            k: norm.counts.get(k, 0)
            for k in COUNT_KEYS
        },
        "empty_title": int((kept["title"] == "").sum()),
        "empty_content": int((kept["content"] == "").sum()),
    }
    atomic_write_json(root / p.metrics, metrics)
    if kept.height == 0:
        raise StageError(f"clean: no petition survived ({read} lines read); see {p.quarantine} and {p.metrics}")

    seconds = time.monotonic() - t0
    return {
        "stage": "clean",
        "out_parquet": p.out_parquet,
        "quarantine": p.quarantine,
        "metrics": p.metrics,
        **{k: metrics[k] for k in ("read", "kept", "duplicates", "quarantined", "splits")},
        "quarantine_reasons": {k: v for k, v in metrics["quarantine_reasons"].items() if v},
        "duplicate_ids": sorted(set(dups["petition_idx"].to_list()))[:20],
        "files": per_file,
        # listed months the source did not have (crawl.allow_missing_months): not in this data
        "missing_months": missing,
        "seconds": round(seconds, 3),
        "rows_per_s": round(read / seconds) if seconds > 0 else None,
        "mb_per_s": round(nbytes / 1e6 / seconds, 2) if seconds > 0 else None,
    }

"""The clean stage's work on the rows (elmo/stages/clean.py orchestrates): parse every line of the
month files into typed rows or quarantine records, normalise the text columns, deduplicate
(the last occurrence wins), and count what happened for the metrics and the report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from elmo.clean.reader import manifest_files, read_month, split_lines
from elmo.clean.schema import OUTPUT_COLUMNS, REASONS, Rejection, parse_record
from elmo.contracts import SPLITS
from elmo.text.normalize import COUNT_KEYS, Normalizer

SCHEMA = {name: getattr(pl, dtype) for name, dtype in OUTPUT_COLUMNS}


def quarantine_record(source_file: str, line: int, rej: Rejection, raw: bytes) -> dict[str, Any]:
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
                quarantine.append(quarantine_record(name, lineno, rec, raw))
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
        rejected.append(quarantine_record(df["source_file"][i], df["source_line"][i], rej, raws[i]))
    return df.filter(~empty), rejected


def deduplicate(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept, dropped duplicates): the last occurrence in (source_file, source_line) order wins."""
    df = df.sort(["source_file", "source_line"])
    last = pl.col("petition_idx").is_last_distinct()
    return df.filter(last), df.filter(~last)


def summarize(kept: pl.DataFrame, dups: pl.DataFrame, quarantine: list[dict[str, Any]], read_per_file: Counter,
              norm_counts: Counter) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """(the metrics: read = kept + duplicates + quarantined, per reason, per split, normalisation
    counts, empty fields; the counts per month file, for the report)."""
    read = sum(read_per_file.values())
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
            k: norm_counts.get(k, 0)
            for k in COUNT_KEYS
        },
        "empty_title": int((kept["title"] == "").sum()),
        "empty_content": int((kept["content"] == "").sum()),
    }
    return metrics, per_file

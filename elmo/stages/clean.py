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
from pathlib import Path
from typing import Any

import polars as pl
from tqdm import tqdm

from elmo.clean.reader import read_manifest
from elmo.clean.rows import SCHEMA, deduplicate, normalise, read_rows, summarize
from elmo.clean.split import assign_splits
from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.params import Params
from elmo.stages import stage_report
from elmo.text.normalize import Normalizer


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

    metrics, per_file = summarize(kept, dups, quarantine, read_per_file, norm.counts)
    atomic_write_json(root / p.metrics, metrics)
    if kept.height == 0:
        raise StageError(f"clean: no petition survived ({read} lines read); see {p.quarantine} and {p.metrics}")

    seconds = time.monotonic() - t0
    return stage_report("clean", params, {
        **{k: metrics[k] for k in ("read", "kept", "duplicates", "quarantined", "splits")},
        "quarantine_reasons": {k: v for k, v in metrics["quarantine_reasons"].items() if v},
        "duplicate_ids": sorted(set(dups["petition_idx"].to_list()))[:20],
        "files": per_file,
        # listed months the source did not have (crawl.allow_missing_months): not in this data
        "missing_months": missing,
        "seconds": round(seconds, 3),
        "rows_per_s": round(read / seconds) if seconds > 0 else None,
        "mb_per_s": round(nbytes / 1e6 / seconds, 2) if seconds > 0 else None,
    })

"""A second labeled Korean task from the mirror: a petition's category (17 classes) from its title.

    .venv/bin/python benchmarks/petitions_task.py OUT_DIR [--parquet data/interim/petitions.parquet]

Writes OUT_DIR/train.tsv and OUT_DIR/dev.tsv (columns petition_idx, title, category) from clean's
output: train = the petitions of clean's train split (the only ones the biLM and its vocabulary
were built from), dev = the valid and test splits (never seen by the biLM). The category is never
part of pretraining. Then add it as a task through params alone (README "Several tasks"), e.g.::

    finetune.tasks.petitions: {source: OUT_DIR, train_file: train.tsv, dev_file: dev.tsv,
                               format: tsv, text_field: title, label_field: category, id_field: petition_idx}
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--parquet", type=Path, default=REPO / "data/interim/petitions.parquet")
    args = ap.parse_args()

    import polars as pl

    if not args.parquet.is_file():
        raise SystemExit(f"{args.parquet}: no such file (run `elmo clean` first)")
    df = pl.read_parquet(args.parquet, columns=["petition_idx", "title", "category", "split"])
    df = df.filter(pl.col("title").str.strip_chars() != "").sort("petition_idx")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, splits in (("train.tsv", ["train"]), ("dev.tsv", ["valid", "test"])):
        part = df.filter(pl.col("split").is_in(splits))
        with open(args.out_dir / name, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            w.writerow(["petition_idx", "title", "category"])
            for row in part.iter_rows():
                w.writerow([row[0], " ".join(row[1].split()), row[2]])
        print(f"{args.out_dir / name}: {part.height} petitions, {part['category'].n_unique()} categories")


if __name__ == "__main__":
    main()

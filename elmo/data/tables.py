"""Reading a stage's parquet input with checks that name the file (and row) when it is wrong.

An empty (0-byte), truncated or otherwise unreadable file, a missing column, a column of the wrong
type or a table without rows stops the stage with a :class:`StageError` naming the file; nothing
is guessed.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from elmo.errors import StageError


def read_parquet_checked(path: Path, columns: dict[str, type[pl.DataType] | pl.DataType], *,
                         produced_by: str, optional: tuple[str, ...] = (), allow_empty: bool = False) -> pl.DataFrame:
    """Read ``columns`` (name → polars dtype) plus any ``optional`` ones that exist.

    ``produced_by`` names the stage that writes the file, for the hint when it is missing.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (written by the {produced_by} stage: run "
                                f"`elmo {produced_by}` or `dvc repro {produced_by}`)")
    if path.is_dir():
        raise StageError(f"{path}: is a directory, expected a parquet file")
    if path.stat().st_size == 0:
        raise StageError(f"{path}: empty file (0 bytes), expected a parquet file written by the {produced_by} stage")
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as err:  # polars/arrow raise several types for a bad file
        raise StageError(f"{path}: not a readable parquet file ({type(err).__name__}: {str(err)[:200]})") from None
    missing = [c for c in columns if c not in schema]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)} (it has: {', '.join(schema)})")
    for name, dtype in columns.items():
        if schema[name] != dtype:
            raise StageError(f"{path}: column {name} has type {schema[name]}, expected {dtype}")
    wanted = list(columns) + [c for c in optional if c in schema and c not in columns]
    try:
        df = pl.read_parquet(path, columns=wanted)
    except Exception as err:
        raise StageError(f"{path}: not a readable parquet file ({type(err).__name__}: {str(err)[:200]})") from None
    if df.height == 0 and not allow_empty:
        raise StageError(f"{path}: has no rows")
    return df


def row_label(df: pl.DataFrame, i: int) -> str:
    """``row i`` plus the source file and line when the table carries them (clean's output does)."""
    label = f"row {i}"
    if "source_file" in df.columns and "source_line" in df.columns:
        label += f" ({df['source_file'][i]} line {df['source_line'][i]})"
    return label

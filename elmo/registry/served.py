"""Served = measured: the logged model must reproduce the predictions its stage measured.

finetune writes each dev record's prediction (``plots/finetune/<task>/dev_predictions.csv``: the text as in
the dev file, the actual and the predicted label, in the file's order; its pairs are the confusion
matrix behind ``metrics/finetune/<task>.json``'s macro-F1). Before a new classifier version is registered,
:func:`check_served` loads the logged model the way a server does (the MLflow pyfunc: raw text in,
the saved text pipeline, the saved layer precision) and scores those texts: every prediction must be
the one measured, so the registered metric is the served model's.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pandas as pd

from elmo.errors import StageError

with warnings.catch_warnings():  # importing mlflow.pyfunc warns that its own Any hints are not validated
    warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType.*")
    import mlflow.pyfunc

COLUMNS = ("text", "actual", "predicted")


def read_predictions(path: Path) -> list[dict[str, str]]:
    """The rows of a dev predictions file (columns text, actual, predicted), checked."""
    if not path.is_file():
        raise StageError(f"{path}: no such file (the measured predictions; written by `elmo finetune`)")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise StageError(f"{path}: line 1: columns {', '.join(missing)} missing (got {reader.fieldnames})")
        rows = list(reader)
    if not rows:
        raise StageError(f"{path}: no predictions")
    return rows


def check_served(model_uri: str, predictions_file: Path, *, input_column: str, batch: int = 512) -> dict:
    """Score the measured texts through the logged pyfunc; a prediction that differs is a StageError
    naming the file's row (1 = the first after the header). Returns counts."""
    rows = read_predictions(predictions_file)
    model = mlflow.pyfunc.load_model(model_uri)
    served: list[str] = []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        served += [r["label"] for r in model.predict(pd.DataFrame({input_column: [r["text"] for r in part]}))]
    differ = [i for i, (row, label) in enumerate(zip(rows, served)) if row["predicted"] != label]
    if differ:
        i = differ[0]
        raise StageError(f"{predictions_file}: row {i + 1}: the logged model {model_uri} predicts {served[i]!r} for "
                         f"{rows[i]['text']!r}, finetune measured {rows[i]['predicted']!r} ({len(differ)} of "
                         f"{len(rows)} predictions differ): the served model is not the measured one")
    correct = sum(row["actual"] == label for row, label in zip(rows, served))
    return {"predictions": len(rows), "accuracy": correct / len(rows)}

"""Classification metrics, computed from the confusion matrix; equal to scikit-learn's.

``macro_f1`` is ``sklearn.metrics.f1_score(y_true, y_pred, average="macro")``: the unweighted mean
of the per-class F1 over the labels that occur in ``y_true`` or ``y_pred``, with 0 for a class
whose precision or recall is undefined (zero_division=0). tests/test_task_metrics.py checks every
number against sklearn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """(K, K) counts: row = true label, column = predicted label, in ``labels`` order."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    index = {lab: i for i, lab in enumerate(labels)}
    missing = sorted({y for y in list(y_true) + list(y_pred) if y not in index})
    if missing:
        raise ValueError(f"label(s) {missing} not among {list(labels)}")
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(cm, ([index[y] for y in y_true], [index[y] for y in y_pred]), 1)
    return cm


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """macro_f1, accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    labels = list(labels)
    cm = confusion(y_true, y_pred, labels)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * tp, support + predicted)  # = 2PR/(P+R), and 0 where undefined
    present = (support + predicted) > 0  # sklearn's default labels: those in y_true or y_pred
    n = int(cm.sum())
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "n": n,
        "per_class": {
            lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                  "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion": {"labels": labels, "matrix": cm.tolist()},
    }


def probs_metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_metrics` of the argmax of (N, K) ``probs`` against label ids ``y`` (N,)."""
    return classification_metrics([labels[i] for i in y], [labels[i] for i in probs.argmax(axis=1)], labels)

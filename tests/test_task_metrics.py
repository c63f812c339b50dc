"""The reported metrics equal scikit-learn's on fixed predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from elmo.task.metrics import classification_metrics

LABELS = ["IT과학", "경제", "사회", "생활문화", "세계", "스포츠", "정치"]


def check(y_true, y_pred, labels) -> dict:
    m = classification_metrics(y_true, y_pred, labels)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, lab in enumerate(labels):
        pc = m["per_class"][lab]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["confusion"]["matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return m


def test_random_predictions_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = list(rng.choice(LABELS, size=200))
        y_pred = list(rng.choice(LABELS, size=200, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]))
        check(y_true, y_pred, LABELS)


def test_fixed_predictions_known_values() -> None:
    y_true = ["a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "b", "b", "b", "a", "c"]
    m = check(y_true, y_pred, ["a", "b", "c"])
    # a: P 1/2 R 1/2 F 1/2; b: P 2/3 R 1 F 4/5; c: P 1 R 1/2 F 2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_class_never_predicted_and_class_absent_everywhere() -> None:
    # "d" is a known label that occurs neither in y_true nor in y_pred: sklearn leaves it out of
    # the macro average; "c" is never predicted: precision 0 by zero_division=0.
    y_true = ["a", "b", "c", "c"]
    y_pred = ["a", "b", "a", "b"]
    m = check(y_true, y_pred, ["a", "b", "c", "d"])
    assert m["per_class"]["c"]["f1"] == 0.0 and m["per_class"]["d"]["support"] == 0


def test_unknown_label_is_an_error() -> None:
    with pytest.raises(ValueError, match="not among"):
        classification_metrics(["a"], ["z"], ["a", "b"])
    with pytest.raises(ValueError, match="1 true labels but 2 predictions"):
        classification_metrics(["a"], ["a", "b"], ["a", "b"])

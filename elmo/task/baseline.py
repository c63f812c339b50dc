"""The TF-IDF + logistic-regression baseline on the raw texts (character n-grams by default).

Trained and scored in the same run as the ELMo models, on the same records, so the comparison in
metrics/ is like for like.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from elmo.task.metrics import classification_metrics


def tfidf_lr(train_texts: Sequence[str], train_labels: Sequence[str], dev_texts: Sequence[str],
             dev_labels: Sequence[str], labels: list[str], p, seed: int = 0) -> dict[str, Any]:
    """Fit on train, score on dev; ``p`` is ``finetune.tfidf``. Returns metrics plus timing."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    vec = TfidfVectorizer(analyzer=p.analyzer, ngram_range=(p.ngram_min, p.ngram_max), min_df=p.min_df,
                          max_features=p.max_features, sublinear_tf=p.sublinear_tf, lowercase=False)
    x_train = vec.fit_transform(train_texts)
    x_dev = vec.transform(dev_texts)
    clf = LogisticRegression(C=p.C, solver="saga", max_iter=p.max_iter, tol=p.tol, random_state=seed)
    clf.fit(x_train, list(train_labels))
    pred = [str(y) for y in clf.predict(x_dev)]
    metrics = classification_metrics(list(dev_labels), pred, labels)
    metrics.update({"features": int(x_train.shape[1]), "seconds": time.perf_counter() - t0,
                    "iterations": int(max(clf.n_iter_))})
    return metrics

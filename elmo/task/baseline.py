"""The TF-IDF + logistic-regression baseline on the raw texts (character n-grams by default).

Trained and scored in the same run as the ELMo models, on the same records, so the comparison in
metrics/ is like for like. :class:`TfidfModel` is also the sparse half of the ensemble main model
(elmo/task/ensemble.py), so it saves without pickle: ``tfidf.json`` (the vectorizer's settings and
n-gram vocabulary, the labels) and ``tfidf.safetensors`` (idf, coefficients, intercepts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from elmo.io import canonical_safetensors
from elmo.task.metrics import classification_metrics

FORMAT = "elmo-ko/tfidf-lr"


class TfidfModel:
    def __init__(self, vectorizer, clf, labels: list[str]) -> None:
        self.vectorizer, self.clf, self.labels = vectorizer, clf, list(labels)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], label_names: list[str], p, seed: int = 0) -> TfidfModel:
        """``p`` is ``finetune.tfidf``; the columns of predict_proba follow ``label_names``."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(analyzer=p.analyzer, ngram_range=(p.ngram_min, p.ngram_max), min_df=p.min_df,
                              max_features=p.max_features, sublinear_tf=p.sublinear_tf, lowercase=False)
        x = vec.fit_transform(texts)
        index = {lab: i for i, lab in enumerate(label_names)}
        clf = LogisticRegression(C=p.C, solver="saga", max_iter=p.max_iter, tol=p.tol, random_state=seed)
        clf.fit(x, np.array([index[y] for y in labels]))
        return cls(vec, clf, label_names)

    @property
    def n_features(self) -> int:
        return len(self.vectorizer.vocabulary_)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, K) probabilities, columns in ``self.labels`` order (a label train never had gets 0)."""
        probs = self.clf.predict_proba(self.vectorizer.transform(list(texts)))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        out[:, self.clf.classes_] = probs
        return out

    def save(self, directory: str | Path) -> None:
        """Into an existing directory: tfidf.json + tfidf.safetensors (no pickle)."""
        directory = Path(directory)
        v = self.vectorizer
        doc = {"format": FORMAT, "labels": self.labels, "classes": [int(c) for c in self.clf.classes_],
               "vectorizer": {"analyzer": v.analyzer, "ngram_range": list(v.ngram_range),
                              "sublinear_tf": v.sublinear_tf, "norm": v.norm, "lowercase": v.lowercase},
               "vocabulary": {k: int(i) for k, i in v.vocabulary_.items()}}
        (directory / "tfidf.json").write_text(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n",
                                              encoding="utf-8")
        # C order: sklearn's coef_ is Fortran-ordered, and safetensors writes an array's memory as it lies
        arrays = {"idf": v.idf_, "coef": self.clf.coef_, "intercept": self.clf.intercept_}
        save_file({k: np.ascontiguousarray(a, dtype=np.float64) for k, a in arrays.items()},
                  str(directory / "tfidf.safetensors"))
        canonical_safetensors(directory / "tfidf.safetensors")  # readable as the biLM's and the classifier's

    @classmethod
    def load(cls, directory: str | Path) -> TfidfModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        directory = Path(directory)
        path = directory / "tfidf.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a readable TF-IDF model: {err}") from None
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: field format is {doc.get('format')!r}, expected {FORMAT!r}")
        arrays = load_file(str(directory / "tfidf.safetensors"))
        v = doc["vectorizer"]
        vec = TfidfVectorizer(analyzer=v["analyzer"], ngram_range=tuple(v["ngram_range"]),
                              sublinear_tf=v["sublinear_tf"], norm=v["norm"], lowercase=v["lowercase"],
                              vocabulary=doc["vocabulary"])
        vec.idf_ = arrays["idf"]
        clf = LogisticRegression()
        clf.classes_ = np.array(doc["classes"])
        clf.coef_, clf.intercept_ = arrays["coef"], arrays["intercept"]
        if clf.coef_.shape != (len(clf.classes_) if len(clf.classes_) > 2 else 1, len(doc["vocabulary"])):
            raise ValueError(f"{directory / 'tfidf.safetensors'}: coefficients do not match tfidf.json")
        return cls(vec, clf, doc["labels"])


def tfidf_lr(train_texts: Sequence[str], train_labels: Sequence[str], dev_texts: Sequence[str],
             dev_labels: Sequence[str], labels: list[str], p, seed: int = 0) -> dict[str, Any]:
    """Fit on train, score on dev; ``p`` is ``finetune.tfidf``. Returns metrics plus timing (and the model)."""
    t0 = time.perf_counter()
    model = TfidfModel.fit(train_texts, train_labels, labels, p, seed=seed)
    pred = [labels[i] for i in model.predict_proba(dev_texts).argmax(axis=1)]
    metrics = classification_metrics(list(dev_labels), pred, labels)
    metrics.update({"features": model.n_features, "seconds": time.perf_counter() - t0,
                    "iterations": int(max(model.clf.n_iter_)), "model": model})
    return metrics

"""The ensemble main model: the ELMo classifier and TF-IDF + logistic regression as a product of experts.

    log p(y | x) ∝ w · log p_elmo(y | x)^(1/T_elmo) + (1 − w) · log p_tfidf(y | x)^(1/T_tfidf)

Both models are trained on the same fit split. Each is first calibrated by temperature scaling
(Guo et al. 2017: one scalar T per model minimising the held-out NLL, which leaves its argmax
unchanged), then the weight ``w`` is the grid value with the best held-out macro-F1. Everything is
chosen on the held-out slice of the train split; the dev set is scored once. The two halves see
different evidence (contextual token vectors from the biLM vs character n-grams of the raw
string), so their errors differ and the product beats each alone; the comparison table keeps
``tfidf_lr`` and the ELMo half alone so that what ELMo adds stays visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from elmo.task.metrics import probs_metrics


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(log(probs) / T) on (probs, y)."""
    from scipy.optimize import minimize_scalar

    logp = _log(probs)

    def nll(t: float) -> float:
        return float(-log_softmax(logp / t)[np.arange(len(y)), y].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


@dataclass(frozen=True)
class Ensemble:
    weight: float  # w of the ELMo classifier (1 − w: TF-IDF)
    t_elmo: float
    t_tfidf: float

    def combine(self, p_elmo: np.ndarray, p_tfidf: np.ndarray) -> np.ndarray:
        """(N, K) probabilities of the product of the two calibrated experts."""
        z = self.weight * _log(p_elmo) / self.t_elmo + (1 - self.weight) * _log(p_tfidf) / self.t_tfidf
        return np.exp(log_softmax(z))

    def to_dict(self) -> dict:
        return {"weight": self.weight, "t_elmo": self.t_elmo, "t_tfidf": self.t_tfidf}


def select_ensemble(p_elmo: np.ndarray, p_tfidf: np.ndarray, y: np.ndarray, labels: list[str],
                    weights: Sequence[float]) -> tuple[Ensemble, list[dict]]:
    """Temperatures and the weight, all on held-out (p_elmo, p_tfidf, y); and each weight's held-out macro-F1."""
    t_e, t_t = fit_temperature(p_elmo, y), fit_temperature(p_tfidf, y)
    scores, best = [], None
    for w in weights:
        ens = Ensemble(float(w), t_e, t_t)
        f1 = probs_metrics(y, ens.combine(p_elmo, p_tfidf), labels)["macro_f1"]
        scores.append({"weight": float(w), "heldout_macro_f1": f1})
        if best is None or f1 > best[0]:
            best = (f1, ens)
    return best[1], scores

"""Analytic FLOPs per token of the biLM (multiply-add = 2 FLOPs; training ~ 3x the forward pass).

Counted: the matrix products and convolutions (everything else is a few percent). The token
encoder runs once per *distinct* spelling of a batch (``unique_ratio`` = distinct / tokens); the
adaptive softmax evaluates a tail cluster only for the targets in it (``tail_fractions``, the
share of targets per cluster; by default a Zipf estimate from the vocabulary size).
"""

from __future__ import annotations

import math

from elmo.model.config import BiLMConfig


def zipf_fractions(vocab_size: int, cutoffs: list[int], s: float = 1.0) -> list[float]:
    """Share of tokens in each tail cluster [c_i, c_{i+1}) under a Zipf(s) law over ranks."""
    def mass(a: int, b: int) -> float:  # sum_{r=a+1}^{b} r^-s, integral approximation
        return math.log((b + 0.5) / (a + 0.5)) if s == 1.0 else ((b + 0.5) ** (1 - s) - (a + 0.5) ** (1 - s)) / (1 - s)
    total = mass(0, vocab_size)
    bounds = list(cutoffs) + [vocab_size]
    return [mass(bounds[i], bounds[i + 1]) / total for i in range(len(cutoffs))]


def flops_per_token(config: BiLMConfig, *, unique_ratio: float = 1.0, tail_fractions: list[float] | None = None,
                    training: bool = True) -> dict[str, float]:
    """FLOPs per real token by part (``token_encoder``, ``lstm``, ``softmax``) and ``total``.

    ``training``: softmax as trained (sampled negatives; adaptive tails on demand) and x3 for the
    backward pass; otherwise one forward pass with the exact softmax.
    """
    c = config
    E, C, F, P, H, V = c.char_embed_dim, c.max_chars, c.n_filters, c.projection_dim, c.lstm_dim, c.vocab_size
    cnn = sum(n * w * E * (C - w + 1) for w, n in c.filters)
    token = (cnn + c.highway_layers * F * 2 * F + F * P) * unique_ratio
    lstm = 2 * c.n_layers * (4 * H * (P + P) + H * P)  # both directions: input + recurrent gates, projection
    if c.softmax == "adaptive" and c.effective_cutoffs:
        cut = c.effective_cutoffs
        fr = tail_fractions if tail_fractions is not None else zipf_fractions(V, cut)
        bounds = cut + [V]
        per_dir = (cut[0] + len(cut)) * P
        for i in range(len(cut)):
            d = int(P // c.adaptive_div_value ** (i + 1))
            per_dir += (P * d + d * (bounds[i + 1] - bounds[i])) * fr[i]  # only targets in cluster i
    elif c.softmax == "sampled" and training:
        per_dir = (c.n_samples + 1) * P
    else:
        per_dir = V * P
    softmax = 2 * per_dir
    mult = 3.0 if training else 1.0
    parts = {"token_encoder": 2 * token * mult, "lstm": 2 * lstm * mult, "softmax": 2 * softmax * mult}
    parts["total"] = sum(parts.values())
    return parts

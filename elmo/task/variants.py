"""The baselines and ablations trained beside the main model (``finetune.compare``).

Each task-model variant is the ``finetune.model`` section with the keys below changed, so a
comparison differs from the main model only in what its name says.
"""

from __future__ import annotations

VARIANTS: dict[str, tuple[str, dict]] = {
    "no_elmo": ("task model without ELMo (trainable word embedding only)",
                {"use_elmo": False, "elmo_output_mix": False}),
    "elmo_no_gamma": ("ELMo at the input, γ fixed at 1",
                      {"use_elmo": True, "elmo_gamma": False, "elmo_output_mix": False}),
    "elmo": ("ELMo at the input, trainable γ", {"use_elmo": True, "elmo_gamma": True, "elmo_output_mix": False}),
    "elmo_in_out": ("ELMo at the input and at the RNN's output, trainable γ",
                    {"use_elmo": True, "elmo_gamma": True, "elmo_output_mix": True}),
}
BASELINE = "tfidf_lr"
BASELINE_DESCRIPTION = "TF-IDF n-grams + logistic regression"


def variant_params(model_params, name: str):
    """``finetune.model`` with variant ``name``'s keys applied (a validated copy)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown comparison {name!r} (one of {BASELINE}, {', '.join(VARIANTS)})")
    changes = dict(VARIANTS[name][1])
    if not changes.get("use_elmo", True) and model_params.word_dim == 0:
        changes["word_dim"] = 100  # without ELMo the word embedding is the only input
    return type(model_params).model_validate({**model_params.model_dump(), **changes})

"""The baselines and ablations trained beside the main model (``finetune.compare``).

Each task-model variant is the ``finetune.model`` section with the keys below changed, and the biLM
it uses (``finetune.bilm.mode``, or ``random``: the control, a biLM of the same shape with untrained
weights), so a comparison differs from the main model only in what its name says.
"""

from __future__ import annotations

_FROZEN = {"use_elmo": True, "elmo_gamma": True, "elmo_output_mix": False}

# name -> (what it is, finetune.model keys changed, biLM mode; None: no biLM)
VARIANTS: dict[str, tuple[str, dict, str | None]] = {
    "no_elmo": ("task model without ELMo (trainable word embedding only)",
                {"use_elmo": False, "elmo_output_mix": False}, None),
    "random_bilm": ("control: frozen ELMo of an untrained biLM of the same shape", _FROZEN, "random"),
    "elmo_no_gamma": ("frozen ELMo at the input, γ fixed at 1",
                      {"use_elmo": True, "elmo_gamma": False, "elmo_output_mix": False}, "frozen"),
    "elmo": ("frozen ELMo at the input, trainable γ", _FROZEN, "frozen"),
    "elmo_in_out": ("frozen ELMo at the input and at the RNN's output, trainable γ",
                    {"use_elmo": True, "elmo_gamma": True, "elmo_output_mix": True}, "frozen"),
    "adapted": ("frozen ELMo of the biLM adapted (LM-finetuned) on the task's train texts", _FROZEN, "adapted"),
    "unfrozen": ("pretrained biLM finetuned in the classifier (gradual unfreezing, discriminative lr, STLR)",
                 _FROZEN, "unfrozen"),
    "adapted_unfrozen": ("biLM adapted on the task's texts, then finetuned in the classifier", _FROZEN,
                         "adapted_unfrozen"),
}
BASELINE = "tfidf_lr"
BASELINE_DESCRIPTION = "TF-IDF n-grams + logistic regression"
UNFROZEN_MODES = ("unfrozen", "adapted_unfrozen")


def variant_params(model_params, name: str):
    """``finetune.model`` with variant ``name``'s keys applied (a validated copy)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown comparison {name!r} (one of {BASELINE}, {', '.join(VARIANTS)})")
    changes = dict(VARIANTS[name][1])
    if not changes.get("use_elmo", True) and model_params.word_dim == 0:
        changes["word_dim"] = 100  # without ELMo the word embedding is the only input
    return type(model_params).model_validate({**model_params.model_dump(), **changes})


def variant_mode(name: str) -> str | None:
    return VARIANTS[name][2]

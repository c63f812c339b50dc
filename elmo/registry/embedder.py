"""The biLM's loader for serving: sentences (or token lists) in, ELMo layer vectors out.

``BiLMEmbedder.load(models/bilm).predict(["문장", ...])`` ->
``[{"tokens": [...], "layers": (L+1) x n x 2P nested lists}, ...]`` — layer 0 is the token vector
duplicated [x; x], layers 1..L are [forward_l; backward_l] (:class:`elmo.embed.elmo.Elmo`). Raw
text goes through the text pipeline saved with the biLM's vocabulary (normaliser + tokenizer,
:mod:`elmo.text.pipeline`), as the pretraining corpus did.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elmo.embed.elmo import Elmo


class BiLMEmbedder:
    def __init__(self, elmo) -> None:
        self.elmo = elmo

    @classmethod
    def load(cls, model_dir: str | Path) -> BiLMEmbedder:
        return cls(Elmo.load(model_dir))

    def predict(self, items: Sequence[str] | Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        out = self.elmo.embed(list(items), mix=None)
        return [{"tokens": toks, "layers": layers.tolist()} for toks, layers in zip(out.tokens, out.layers)]

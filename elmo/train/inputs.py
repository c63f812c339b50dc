"""What pretraining reads: the vocab stage's vocabulary and arrays, the biLM config that fits them,
and each petition's month (clean's table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elmo.contracts import SPLITS
from elmo.data.loader import SentenceDataset
from elmo.errors import StageError
from elmo.log import get_logger
from elmo.model import BiLMConfig
from elmo.params.pretrain import ModelParams
from elmo.train.drift import petition_months
from elmo.vocab import Vocabulary

log = get_logger("pretrain")


@dataclass
class Inputs:
    """What the vocab stage wrote, loaded: the vocabulary and one dataset per split."""

    vocab: Any  # elmo.vocab.Vocabulary
    data: dict[str, Any]  # split -> elmo.data.loader.SentenceDataset

    @property
    def arrays_meta(self) -> dict:
        return self.data["train"].arrays.meta


def load_inputs(vocab_dir: Path, arrays_dir: Path) -> Inputs:
    vocab = Vocabulary.load(vocab_dir)
    data = {s: SentenceDataset(arrays_dir, s, vocab) for s in SPLITS}
    for s in SPLITS:
        if len(data[s]) == 0:
            raise StageError(f"{arrays_dir}: the {s} split has no sentences (clean.valid_fraction/test_fraction?)")
    return Inputs(vocab, data)


def model_config(model: ModelParams, vocab) -> BiLMConfig:
    """The biLM config of a preset for this vocabulary (sizes from the data, shape from params)."""
    try:
        return BiLMConfig(vocab_size=vocab.size, n_chars=vocab.char_size, max_chars=vocab.max_chars_per_token,
                          char_pad_id=0, **model.model_dump())
    except ValueError as err:
        raise StageError(f"pretrain preset does not fit the vocabulary ({vocab!r}): {err}") from None


def read_months(path: Path):
    """Each petition's month (clean's table), or None when the table is not there (a workspace
    without clean's output: the biLM then records no months and there is no drift report)."""
    if not path.is_file():
        log.warning(f"pretrain.petitions: {path} not found: the biLM records no months, no drift report")
        return None
    return petition_months(path)

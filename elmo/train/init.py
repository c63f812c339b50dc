"""Where a pretraining starts (``pretrain.init``): random weights, or the previous biLM continued.

``previous`` continues from the biLM already in ``pretrain.out_dir`` — the last one pretrained; DVC
keeps it there while the stage reruns (``persist: true`` in dvc.yaml), since a stage cannot depend on
its own output. On the grown corpus it keeps that biLM's vocabulary: its word ids do not move (new
words are ``<unk>`` targets, read by their characters on the input side), and the characters of the
train split it lacks (seen at least its ``chars.min_count`` times) are added, their embeddings
starting as ``<unk>``'s (``Vocabulary.with_more_chars``, ``BiLM.with_chars``: the same code as
finetune's adapt). The training arrays are read through that vocabulary: the vocab stage's type ids
stay, the type tables are rebuilt (``SentenceDataset.with_type_tables``).

No previous biLM, or one that cannot continue here (another model shape than the preset's, another
tokenizer, unreadable), falls back to scratch; the reason is logged and reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elmo.data.arrays import read_types
from elmo.errors import StageError
from elmo.io import sha256_file
from elmo.log import get_logger
from elmo.model import BiLM, BiLMConfig, vocab_dir
from elmo.model.files import CONFIG_FILE, WEIGHTS_FILE, read_config
from elmo.params.pretrain import InitTrainParams, ModelParams, TrainParams
from elmo.train.inputs import Inputs, model_config
from elmo.vocab import Vocabulary

SCRATCH, PREVIOUS = "scratch", "previous"

log = get_logger("pretrain")


@dataclass
class Previous:
    """The previous biLM, ready to continue on this corpus."""

    dir: Path
    bilm: BiLM  # its weights (character embedding grown by ``chars_added``)
    vocab: Vocabulary  # its vocabulary (+ ``chars_added``)
    meta: dict  # its config.json's meta (steps, months, ...)
    weights_sha256: str
    chars_added: list[str] = field(default_factory=list)

    @property
    def months(self) -> list[str] | None:
        """The months of the corpus it was trained on (None: a biLM made before biLMs recorded them)."""
        months = self.meta.get("months")
        return list(months) if isinstance(months, list) else None


def train_token_counts(train, types: list[str]) -> dict[str, int]:
    """Token -> occurrences in the train split (``train``: an elmo.data SentenceDataset)."""
    counts = np.bincount(np.asarray(train.arrays.tokens), minlength=len(types) + 4)[4:]
    return {types[i]: int(counts[i]) for i in np.flatnonzero(counts)}


def load_previous(out_dir: Path, vocab: Vocabulary, arrays_dir: Path, train,
                  config_for: Callable[[Vocabulary], BiLMConfig],
                  name: str | None = None) -> tuple[Previous | None, str]:
    """The biLM in ``out_dir`` ready to continue on the arrays of ``vocab`` (the vocab stage's), or
    None and why not (naming the directory ``name``: the param's value, relative to the workspace).
    ``config_for(vocab)`` is the preset's model config for a vocabulary: the previous biLM must have
    that shape."""
    name = name or str(out_dir)
    if not (out_dir / CONFIG_FILE).is_file() or not (out_dir / WEIGHTS_FILE).is_file():
        return None, f"no previous biLM in {name}"
    try:
        doc = read_config(out_dir)
        vdir = vocab_dir(out_dir)
        if vdir is None:
            return None, f"{name}: the previous biLM was saved without its vocabulary"
        prev_vocab = Vocabulary.load(vdir)
        bilm = BiLM.load(out_dir)
    except (OSError, ValueError, StageError) as err:
        return None, f"{name}: the previous biLM cannot be read ({str(err).replace(str(out_dir), name)})"
    if prev_vocab.tokenizer_config != vocab.tokenizer_config:
        return None, (f"{name}: the previous biLM read text tokenized another way "
                      f"({prev_vocab.tokenizer_config} != {vocab.tokenizer_config})")
    types = read_types(arrays_dir)
    ext, added = prev_vocab.with_more_chars(train_token_counts(train, types), prev_vocab.chars.min_count)
    try:
        want = config_for(ext).to_dict()
    except StageError as err:
        return None, f"{name}: the preset does not fit the previous biLM's vocabulary ({err})"
    have = bilm.config.replace(n_chars=ext.char_size).to_dict()
    if want != have:
        diff = sorted(k for k in want if want[k] != have.get(k))
        return None, f"{name}: the previous biLM has another shape than the preset ({', '.join(diff)})"
    if added:
        bilm = bilm.with_chars(ext.char_size)
    prev = Previous(out_dir, bilm, ext, dict(doc.get("meta") or {}), sha256_file(out_dir / WEIGHTS_FILE), added)
    return prev, (f"continuing from {name} ({prev.meta.get('steps', '?')} steps, months "
                  f"{', '.join(prev.months) if prev.months else 'not recorded'}); its {prev_vocab.size:,} words kept"
                  + (f", {len(added)} characters added ({' '.join(added[:20])})" if added else ""))


def retype(data: dict, vocab: Vocabulary, arrays_dir: Path) -> dict:
    """Each split's dataset read through ``vocab`` (the same type ids, that vocabulary's tables)."""
    type_chars, type_words = vocab.type_table(read_types(arrays_dir))
    return {split: ds.with_type_tables(type_chars, type_words) for split, ds in data.items()}


def continued_train(train: TrainParams, opts: InitTrainParams) -> TrainParams:
    """The preset's training for an ``init: previous`` run: ``steps_fraction`` of its steps and warmup,
    ``lr_scale`` x its peak lr; the rest (schedule, batch size, validation) unchanged."""
    return train.model_copy(update={
        "max_steps": max(1, math.ceil(train.max_steps * opts.steps_fraction)),
        "warmup_steps": round(train.warmup_steps * opts.steps_fraction),
        "lr": train.lr * opts.lr_scale,
    })


def choose_init(asked: str, out_dir: Path, out_name: str, arrays_dir: Path, inputs: Inputs, model: ModelParams,
                init_train: InitTrainParams):
    """(the previous biLM or None, why (not), the ``init`` report). ``asked``: ``pretrain.init``;
    ``out_dir``: where the previous biLM is (``out_name``: as params name it). The previous biLM is loaded
    whenever there is one that fits (``init: scratch`` too: the drift report measures it); it is trained on
    only with ``init: previous``."""
    prev, why = load_previous(out_dir, inputs.vocab, arrays_dir, inputs.data["train"],
                              lambda vocab: model_config(model, vocab), name=out_name)
    used = PREVIOUS if asked == PREVIOUS and prev is not None else SCRATCH
    init = {"asked": asked, "used": used}
    if used == PREVIOUS:
        init.update({"from": out_name, "from_weights_sha256": prev.weights_sha256,
                     "from_steps": prev.meta.get("steps"), "from_months": prev.months,
                     "chars_added": len(prev.chars_added), "train": init_train.model_dump()})
        log.info(f"pretrain: init previous: {why}")
    elif asked == PREVIOUS:
        init["note"] = f"{why}: trained from scratch"
        log.warning(f"pretrain: init previous asked, but {why}: training from scratch")
    else:
        log.info("pretrain: init scratch (random weights, the vocab stage's vocabulary)")
    return prev, why, init

"""The training batch of the biLM and the one function that builds it (:func:`collate_types`;
:func:`encode_batch` for token lists and a vocabulary).

Every sentence is wrapped as ``[<bos>, w1 … wn, <eos>]`` (T = n + 2 before padding). In a batch
of B sentences padded to the longest, T:

* ``chars``  (B, T, C) int64 — character ids of each position (:mod:`elmo.vocab.chars`); an
  out-of-vocabulary word keeps its real characters, padded positions are all <pad> (0),
* ``tokens`` (B, T) int64 — word ids (out-of-vocabulary words are <unk> = 1, pads <pad> = 0),
* ``mask``   (B, T) bool — true at the n + 2 real positions,
* ``fwd_targets`` (B, T) — the word id at t + 1 (next token); the last real position (<eos>) and
  pads hold <pad> = 0,
* ``bwd_targets`` (B, T) — the word id at t − 1 (previous token); position 0 (<bos>) and pads
  hold 0. Losses ignore target 0 (``ignore_index=0``).

Positions are described by *type ids*: an index into a table of token types whose rows give the
character ids (``type_chars``, (n_types, C)) and the word id (``type_words``, (n_types,)) of the
type. Type ids 0..3 are <pad>, <unk>, <bos>, <eos> (the same numbers as the word ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from elmo.vocab.vocabulary import Vocabulary
from elmo.vocab.words import WORD_SPECIALS

PAD_TYPE, BOS_TYPE, EOS_TYPE = 0, 2, 3


@dataclass
class Batch:
    chars: torch.Tensor  # (B, T, C) int64
    tokens: torch.Tensor  # (B, T) int64
    mask: torch.Tensor  # (B, T) bool
    fwd_targets: torch.Tensor  # (B, T) int64
    bwd_targets: torch.Tensor  # (B, T) int64

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def __len__(self) -> int:  # lets Lightning and friends infer the batch size
        return self.tokens.shape[0]

    @property
    def num_targets(self) -> int:
        """Number of forward targets (= of backward targets): words + <eos> per sentence."""
        return int((self.fwd_targets != 0).sum())

    def _map(self, fn) -> Batch:
        return Batch(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def to(self, device, non_blocking: bool = False, **kwargs) -> Batch:
        return self._map(lambda t: t.to(device, non_blocking=non_blocking, **kwargs))

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True)
        return self._map(lambda t: t.pin_memory())


def collate_types(seqs: Sequence[np.ndarray], type_chars: np.ndarray, type_words: np.ndarray) -> Batch:
    """Build a :class:`Batch` from sentences given as type-id arrays (without <bos>/<eos>)."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs)) + 2
    B, T = len(seqs), int(lengths.max()) if len(seqs) else 2
    types = np.full((B, T), PAD_TYPE, dtype=np.int64)  # (B, T)
    types[:, 0] = BOS_TYPE
    for b, s in enumerate(seqs):
        types[b, 1:len(s) + 1] = s
        types[b, len(s) + 1] = EOS_TYPE
    mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    tokens = type_words[types].astype(np.int64, copy=False)  # (B, T); pad type → word 0
    fwd = np.zeros_like(tokens)
    fwd[:, :-1] = tokens[:, 1:]  # next word; pad (0) after <eos>
    bwd = np.zeros_like(tokens)
    bwd[:, 1:] = tokens[:, :-1]
    bwd[~mask] = 0  # the first pad would otherwise see <eos> as its previous word
    chars = type_chars[types].astype(np.int64, copy=False)  # (B, T, C)
    return Batch(
        chars=torch.from_numpy(chars),
        tokens=torch.from_numpy(tokens),
        mask=torch.from_numpy(mask),
        fwd_targets=torch.from_numpy(fwd),
        bwd_targets=torch.from_numpy(bwd),
    )


def encode_batch(vocab: Vocabulary, sentences: Sequence[Sequence[str]]) -> Batch:
    """A :class:`Batch` for raw token lists (each wrapped in <bos> … <eos>), their types looked up in
    ``vocab`` (an out-of-vocabulary token keeps its characters, its word is <unk>)."""
    index: dict[str, int] = {}
    seqs = []
    for sentence in sentences:
        ids = np.empty(len(sentence), dtype=np.int64)
        for i, token in enumerate(sentence):
            ids[i] = index.setdefault(token, len(WORD_SPECIALS) + len(index))
        seqs.append(ids)
    type_chars, type_words = vocab.type_table(list(index))
    return collate_types(seqs, type_chars, type_words)

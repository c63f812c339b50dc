"""Synthetic biLM batches of exactly the loader's shape, for tests and benchmarks.

A "corpus" here is a list of sentences of word ids (>= 4: ids 0-3 are <pad> <unk> <bos> <eos>);
every word id gets a fixed random spelling of 1..C-2 char ids, wrapped in begin/end-of-word
markers. Batches follow elmo/data's contract: each sentence is [<bos>, w1..wn, <eos>], right-padded;
fwd_targets[t] = id at t+1, bwd_targets[t] = id at t-1, <pad>=0 where there is none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PAD, UNK, BOS, EOS = 0, 1, 2, 3
CHAR_PAD, CHAR_BOW, CHAR_EOW, CHAR_BOS, CHAR_EOS = 0, 1, 2, 3, 4
N_SPECIAL_CHARS = 5


@dataclass
class SyntheticBatch:
    chars: torch.Tensor  # (B, T, C) long
    tokens: torch.Tensor  # (B, T) long word ids
    mask: torch.Tensor  # (B, T) bool
    fwd_targets: torch.Tensor  # (B, T) long
    bwd_targets: torch.Tensor  # (B, T) long


def spellings(vocab_size: int, n_chars: int, max_chars: int, seed: int = 0) -> np.ndarray:
    """(V, C) char ids per word id: specials get their own marker, words random letters."""
    rng = np.random.default_rng(seed)
    table = np.full((vocab_size, max_chars), CHAR_PAD, dtype=np.int64)
    for w in range(vocab_size):
        if w in (PAD,):
            continue
        if w == BOS or w == EOS or w == UNK:
            body = [CHAR_BOS if w == BOS else CHAR_EOS if w == EOS else N_SPECIAL_CHARS]
        else:
            n = int(rng.integers(1, max_chars - 1))
            body = rng.integers(N_SPECIAL_CHARS, n_chars, size=n).tolist()
        row = [CHAR_BOW] + body + [CHAR_EOW]
        table[w, :len(row)] = row
    return table


def make_batch(sentences: list[list[int]], table: np.ndarray) -> SyntheticBatch:
    """Sentences of word ids (without <bos>/<eos>) -> one right-padded batch."""
    B = len(sentences)
    T = max(len(s) for s in sentences) + 2
    tokens = np.zeros((B, T), dtype=np.int64)
    for i, s in enumerate(sentences):
        tokens[i, :len(s) + 2] = [BOS, *s, EOS]
    mask = tokens != PAD
    fwd = np.zeros_like(tokens)
    bwd = np.zeros_like(tokens)
    fwd[:, :-1] = tokens[:, 1:]  # pads of the next position are 0 already
    bwd[:, 1:] = tokens[:, :-1]
    bwd[~mask] = PAD
    chars = table[tokens]  # (B, T, C); <pad> rows are all CHAR_PAD
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return SyntheticBatch(chars=t(chars), tokens=t(tokens), mask=t(mask), fwd_targets=t(fwd), bwd_targets=t(bwd))


def random_corpus(n_sentences: int, vocab_size: int, min_len: int = 3, max_len: int = 12,
                  seed: int = 0, zipf: float = 1.1) -> list[list[int]]:
    """Sentences of Zipf-distributed word ids in [4, V): roughly the shape of real text."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab_size - 4 + 1)
    p = ranks ** -zipf
    p /= p.sum()
    lengths = rng.integers(min_len, max_len + 1, size=n_sentences)
    return [(rng.choice(vocab_size - 4, size=int(n), p=p) + 4).tolist() for n in lengths]


# ---------------------------------------------------------------------------- a whole workspace
SYLLABLES = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허고노도로모보소오조초"


def word_corpus(sentences: list[list[int]]) -> list[list[str]]:
    """Word-id sentences -> sentences of Hangul 'words' (id n spelled in base-len(SYLLABLES) syllables)."""
    def spell(i: int) -> str:
        out = ""
        while True:
            i, r = divmod(i, len(SYLLABLES))
            out = SYLLABLES[r] + out
            if i == 0:
                return out
    return [[spell(w) for w in s] for s in sentences]


def write_workspace(root, splits: dict[str, list[list[str]]], *, vocab_dir: str = "data/processed/vocab",
                    arrays_dir: str = "data/processed/arrays", char_unit: str = "syllables",
                    max_chars_per_token: int = 8, min_count: int = 1, max_size: int = 10_000) -> None:
    """What the vocab stage would write for these tokenized splits (vocabulary + training arrays)."""
    from pathlib import Path

    import polars as pl

    from elmo.data.arrays import build_arrays
    from elmo.vocab.build import build_vocabulary

    root = Path(root)
    tables = {
        s: pl.DataFrame({"petition_idx": list(range(len(sents))), "sentence_idx": [0] * len(sents),
                         "tokens": sents}, schema={"petition_idx": pl.Int64, "sentence_idx": pl.Int32,
                                                   "tokens": pl.List(pl.Utf8)})
        for s, sents in splits.items()
    }
    vocab, _ = build_vocabulary(tables["train"], min_count=min_count, max_size=max_size, char_unit=char_unit,
                                char_min_count=1, max_chars_per_token=max_chars_per_token,
                                tokenizer={"tagger": "mecab", "pos_tags": False, "max_sentence_tokens": 100})
    vocab.save(root / vocab_dir)
    build_arrays(vocab, tables, root / arrays_dir)

"""Count the train split's tokens and build the :class:`Vocabulary` from them."""

from __future__ import annotations

from typing import Any

import polars as pl

from elmo.vocab.chars import CharVocab
from elmo.vocab.vocabulary import Vocabulary
from elmo.vocab.words import WordVocab


def token_counts(sentences: pl.DataFrame) -> pl.DataFrame:
    """``token``, ``count`` of a table with a ``tokens`` list column; most frequent first, ties by token."""
    return (
        sentences.select(pl.col("tokens").explode().alias("token"))
        .group_by("token")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .sort(["count", "token"], descending=[True, False])
    )


def build_vocabulary(train: pl.DataFrame, *, min_count: int, max_size: int, char_unit: str,
                     char_min_count: int, max_chars_per_token: int,
                     tokenizer: dict[str, Any]) -> tuple[Vocabulary, pl.DataFrame]:
    """The vocabulary of the train split, and its token counts (for the metrics)."""
    counts = token_counts(train)
    pairs = list(zip(counts["token"].to_list(), counts["count"].to_list()))
    words = WordVocab.build(pairs, min_count=min_count, max_size=max_size,
                            n_sentences=train.height, n_tokens=int(counts["count"].sum()))
    chars = CharVocab.build(char_unit, pairs, max_chars_per_token, min_count=char_min_count)
    return Vocabulary(words, chars, tokenizer), counts


def coverage(st: dict) -> dict:
    """One split's coverage metrics from its counts (build_arrays' per-split stats)."""
    tokens = st["tokens"]
    return {
        "sentences": st["sentences"],
        "tokens": tokens,
        "oov_tokens": st["oov_tokens"],
        "coverage": round(1 - st["oov_tokens"] / tokens, 6) if tokens else None,
        "oov_rate": round(st["oov_tokens"] / tokens, 6) if tokens else None,
        "truncated_tokens": st["truncated_tokens"],
        "unk_char_rate": round(st["unk_units"] / st["units"], 6) if st["units"] else None,
    }

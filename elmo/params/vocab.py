"""Params of the vocab stage (see elmo/stages/vocab.py, elmo/vocab/ and elmo/data/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from elmo.params.base import Section
from elmo.params.paths import WorkspacePath


class VocabParams(Section):
    in_dir: str = "data/processed/sentences"  # what tokenize writes
    out_dir: WorkspacePath = "data/processed/vocab"  # vocab.json, words.txt, chars.txt (copied into models)
    arrays_dir: WorkspacePath = "data/processed/arrays"  # memory-mapped training arrays per split
    metrics: WorkspacePath = "metrics/vocab.json"
    # Word vocabulary, built on the train split only: words seen at least min_count times, the most
    # frequent first, at most max_size entries including the 4 specials <pad> <unk> <bos> <eos>.
    min_count: int = Field(3, ge=1)
    max_size: int = Field(40_000, ge=5)
    # Character units: bytes (UTF-8, as bilm-tf), syllables (each character), or jamo (Hangul
    # syllables decomposed into leading consonant, vowel, optional trailing consonant).
    char_unit: Literal["bytes", "syllables", "jamo"] = "jamo"
    char_min_count: int = Field(2, ge=1)  # syllables/jamo: rarer characters map to <unk>
    # Units per token including the begin- and end-of-word markers; longer tokens keep their first
    # max_chars_per_token - 2 units (counted in metrics/vocab.json as truncated).
    max_chars_per_token: int = Field(20, ge=3, le=256)

"""The character vocabulary: how a token becomes ``max_chars_per_token`` character ids.

Id layout (the same for every unit)::

    0 <pad>  padding after the end-of-word marker, and every character of a padded token
    1 <bow>  begin of word          2 <eow>  end of word
    3 <bos>  begin of sentence      4 <eos>  end of sentence (each alone inside <bow> … <eow>)
    5 <unk>  a character outside the vocabulary (syllables, jamo; reserved for bytes)
    6 …      the units: bytes 0x00..0xff as ids 6..261 (bytes), or the characters (syllables) or
             jamo and other characters (jamo) seen at least ``min_count`` times in the train split,
             most frequent first, ties in code point order

A token of n units is ``[<bow>, u1 … un, <eow>, <pad> …]``; the sentence markers are
``[<bow>, <bos>, <eow>, <pad> …]`` and ``[<bow>, <eos>, <eow>, <pad> …]`` as in bilm-tf.
**Longer tokens** (n > max_chars_per_token − 2) keep their first max_chars_per_token − 2 units
and still end with <eow> (bilm-tf truncates the same way; for bytes a cut can fall inside a
multi-byte character). The vocab stage counts truncated tokens in ``metrics/vocab.json``.

Units: ``bytes`` — the token's UTF-8 bytes (a Hangul syllable is 3 bytes); ``syllables`` — each
Unicode character; ``jamo`` — each character after decomposing Hangul syllables into leading
consonant, vowel and optional trailing consonant (:mod:`elmo.vocab.jamo`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from elmo.errors import StageError
from elmo.vocab.jamo import decompose

CHAR_SPECIALS = ("<pad>", "<bow>", "<eow>", "<bos>", "<eos>", "<unk>")
PAD, BOW, EOW, BOS, EOS, UNK = range(6)
UNITS = ("bytes", "syllables", "jamo")
CHAR_DTYPE = np.uint16  # stored tables; at most 65,535 character ids


def token_units(token: str, unit: str) -> list[str]:
    """The units of ``token`` as strings (bytes as two hex digits, e.g. ``"ea"``)."""
    if unit == "bytes":
        return [f"{b:02x}" for b in token.encode("utf-8")]
    if unit == "syllables":
        return list(token)
    if unit == "jamo":
        return list(decompose(token))
    raise StageError(f"vocab.char_unit: unknown unit {unit!r} (one of {', '.join(UNITS)})")


def unit_counts(token_counts: Mapping[str, int] | Iterable[tuple[str, int]], unit: str) -> dict[str, int]:
    """How often each unit occurs, from token frequencies."""
    items = token_counts.items() if isinstance(token_counts, Mapping) else token_counts
    counts: dict[str, int] = {}
    for token, count in items:
        for u in token_units(token, unit):
            counts[u] = counts.get(u, 0) + count
    return counts


class CharVocab:
    def __init__(self, unit: str, symbols: Sequence[str], max_chars_per_token: int, min_count: int = 1) -> None:
        if unit not in UNITS:
            raise StageError(f"vocab.char_unit: unknown unit {unit!r} (one of {', '.join(UNITS)})")
        if max_chars_per_token < 3:
            raise StageError("vocab.max_chars_per_token must be at least 3 (<bow>, one unit, <eow>), "
                             f"got {max_chars_per_token}")
        self.unit = unit
        self.symbols = list(symbols)
        self.max_chars_per_token = int(max_chars_per_token)
        self.min_count = int(min_count)
        self.index = {s: i + len(CHAR_SPECIALS) for i, s in enumerate(self.symbols)}
        if len(self.index) != len(self.symbols):
            raise StageError("character vocabulary has duplicate entries")
        if self.size > np.iinfo(CHAR_DTYPE).max:
            raise StageError(f"character vocabulary too large ({self.size} ids, at most "
                             f"{np.iinfo(CHAR_DTYPE).max}): raise vocab.char_min_count")

    @property
    def size(self) -> int:
        return len(CHAR_SPECIALS) + len(self.symbols)

    @classmethod
    def build(cls, unit: str, token_counts: Mapping[str, int] | Iterable[tuple[str, int]],
              max_chars_per_token: int, min_count: int = 1) -> CharVocab:
        """From token frequencies (train split). Bytes ignore the counts: all 256 are always there."""
        if unit == "bytes":
            return cls(unit, [f"{b:02x}" for b in range(256)], max_chars_per_token, min_count=1)
        counts = unit_counts(token_counts, unit)
        kept = sorted((u for u, c in counts.items() if c >= min_count), key=lambda u: (-counts[u], u))
        return cls(unit, kept, max_chars_per_token, min_count=min_count)

    def extended(self, token_counts: Mapping[str, int] | Iterable[tuple[str, int]],
                 min_count: int) -> tuple[CharVocab, list[str]]:
        """This vocabulary with the units of ``token_counts`` it lacks that occur at least ``min_count``
        times appended (most frequent first; ids of the existing units unchanged), and those units.
        Bytes, or ``min_count`` 0, leave it as it is."""
        if min_count < 1 or self.unit == "bytes":  # every byte is already a unit
            return self, []
        counts = unit_counts(token_counts, self.unit)
        new = sorted((u for u, c in counts.items() if c >= min_count and u not in self.index),
                     key=lambda u: (-counts[u], u))
        if not new:
            return self, []
        return CharVocab(self.unit, [*self.symbols, *new], self.max_chars_per_token, self.min_count), new

    def config(self) -> dict:
        return {"unit": self.unit, "size": self.size, "min_count": self.min_count,
                "max_chars_per_token": self.max_chars_per_token, "specials": list(CHAR_SPECIALS)}

    def to_text(self) -> str:
        """chars.txt: the specials, then one unit per line in id order."""
        return "".join(f"{s}\n" for s in (*CHAR_SPECIALS, *self.symbols))

    @classmethod
    def from_text(cls, text: str, unit: str, max_chars_per_token: int, min_count: int = 1,
                  where: str = "chars.txt") -> CharVocab:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if tuple(lines[: len(CHAR_SPECIALS)]) != CHAR_SPECIALS:
            raise StageError(f"{where}: must start with the specials {' '.join(CHAR_SPECIALS)}")
        return cls(unit, lines[len(CHAR_SPECIALS):], max_chars_per_token, min_count)

    def special_row(self, char_id: int) -> np.ndarray:
        """``[<bow>, char_id, <eow>, <pad> …]`` (the row of <bos>, <eos>, <unk>)."""
        row = np.zeros(self.max_chars_per_token, dtype=np.int64)
        row[:3] = (BOW, char_id, EOW)
        return row

    def unit_ids(self, token: str) -> list[int]:
        """Ids of all units of ``token`` (no markers, no truncation)."""
        if self.unit == "bytes":
            return [b + len(CHAR_SPECIALS) for b in token.encode("utf-8")]
        get = self.index.get
        units = token if self.unit == "syllables" else decompose(token)
        return [get(u, UNK) for u in units]

    def encode(self, token: str) -> np.ndarray:
        """The (max_chars_per_token,) ids of one token (truncated as documented above)."""
        return self.encode_many([token])[0]

    def encode_many(self, tokens: Sequence[str]) -> np.ndarray:
        """(len(tokens), max_chars_per_token) int64 ids."""
        width = self.max_chars_per_token
        keep = width - 2
        pad = [PAD] * width
        rows = []
        for token in tokens:
            ids = self.unit_ids(token)[:keep]
            rows.append([BOW, *ids, EOW, *pad[: keep - len(ids)]])
        return np.array(rows, dtype=np.int64).reshape(len(tokens), width)

    def n_units(self, token: str) -> int:
        if self.unit == "bytes":
            return len(token.encode("utf-8"))
        return len(token) if self.unit == "syllables" else len(decompose(token))

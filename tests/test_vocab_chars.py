"""Each character unit maps a mixed Korean/English/digit/emoji sentence exactly as documented."""

from __future__ import annotations

import numpy as np
import pytest

from elmo.errors import StageError
from elmo.vocab.chars import BOS, BOW, EOS, EOW, PAD, UNK, CharVocab

TOKENS = ["한국", "AI", "2024", "😀"]
COUNTS = {"한국": 3, "AI": 2, "2024": 1, "😀": 1}
C = 10


def _row(*ids: int) -> list[int]:
    return [BOW, *ids, EOW] + [PAD] * (C - len(ids) - 2)


def test_bytes_are_utf8_plus_6() -> None:
    v = CharVocab.build("bytes", COUNTS, C)
    assert v.size == 262 and (BOW, EOW, BOS, EOS, UNK, PAD) == (1, 2, 3, 4, 5, 0)
    got = v.encode_many(TOKENS).tolist()
    assert got == [
        _row(0xED + 6, 0x95 + 6, 0x9C + 6, 0xEA + 6, 0xB5 + 6, 0xAD + 6),  # 한 = ED 95 9C, 국 = EA B5 AD
        _row(ord("A") + 6, ord("I") + 6),
        _row(*(ord(c) + 6 for c in "2024")),
        _row(0xF0 + 6, 0x9F + 6, 0x98 + 6, 0x80 + 6),  # U+1F600 = F0 9F 98 80
    ]


def test_syllables_frequency_then_code_point() -> None:
    v = CharVocab.build("syllables", COUNTS, C)
    # counts: 한 3, 국 3, '2' 2, A 2, I 2, '0' 1, '4' 1, 😀 1 → ids from 6, ties in code point order
    assert v.symbols == ["국", "한", "2", "A", "I", "0", "4", "😀"]
    assert v.encode_many(TOKENS).tolist() == [_row(7, 6), _row(9, 10), _row(8, 11, 8, 12), _row(13)]
    assert v.encode("뷁").tolist() == _row(UNK)


def test_jamo_decomposes_hangul_and_keeps_the_rest() -> None:
    v = CharVocab.build("jamo", COUNTS, C)
    # 한 = ᄒ ᅡ ᆫ, 국 = ᄀ ᅮ ᆨ (each 3×), then '2' A I (2×), then '0' '4' 😀 (1×)
    assert v.symbols == ["\u1100", "\u1112", "\u1161", "\u116e", "\u11a8", "\u11ab", "2", "A", "I", "0", "4", "😀"]
    assert v.encode_many(TOKENS).tolist() == [
        _row(7, 8, 11, 6, 9, 10), _row(13, 14), _row(12, 15, 12, 16), _row(17),
    ]
    assert v.encode("갑").tolist() == _row(6, 8, UNK)  # ᄀ ᅡ known, ᆸ unseen


def test_min_count_truncation_and_sentence_markers() -> None:
    v = CharVocab.build("syllables", COUNTS, 5, min_count=2)
    assert v.symbols == ["국", "한", "2", "A", "I"]  # '0', '4', 😀 seen once
    assert v.encode("2024").tolist() == [BOW, 8, UNK, 8, EOW]  # 4 units, 3 kept, still <eow>
    assert v.encode("😀").tolist() == [BOW, UNK, EOW, PAD, PAD]
    assert v.special_row(BOS).tolist() == [BOW, BOS, EOW, PAD, PAD]
    assert v.special_row(EOS).tolist() == [BOW, EOS, EOW, PAD, PAD]
    b = CharVocab.build("bytes", {}, 5)
    assert b.encode("한국").tolist() == [BOW, 0xED + 6, 0x95 + 6, 0x9C + 6, EOW]  # cut inside 국's bytes


def test_text_round_trip_and_errors() -> None:
    for unit in ("bytes", "syllables", "jamo"):
        v = CharVocab.build(unit, COUNTS, C)
        again = CharVocab.from_text(v.to_text(), unit, C)
        assert again.symbols == v.symbols
        assert np.array_equal(again.encode_many(TOKENS), v.encode_many(TOKENS))
    with pytest.raises(StageError, match="unknown unit 'words'"):
        CharVocab.build("words", COUNTS, C)
    with pytest.raises(StageError, match="must start with the specials"):
        CharVocab.from_text("a\nb\n", "syllables", C)

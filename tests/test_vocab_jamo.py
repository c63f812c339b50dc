"""Hangul syllable ↔ jamo decomposition by Unicode arithmetic."""

from __future__ import annotations

import unicodedata

from elmo.vocab.jamo import S_BASE, S_COUNT, compose, decompose, decompose_syllable


def test_every_syllable_round_trips() -> None:
    for code in range(0xAC00, 0xD7A3 + 1):
        s = chr(code)
        jamo = decompose_syllable(s)
        assert len(jamo) in (2, 3)
        assert 0x1100 <= ord(jamo[0]) <= 0x1112  # leading consonant
        assert 0x1161 <= ord(jamo[1]) <= 0x1175  # vowel
        if len(jamo) == 3:
            assert 0x11A8 <= ord(jamo[2]) <= 0x11C2  # trailing consonant
        assert jamo == unicodedata.normalize("NFD", s)  # the standard's own decomposition
        assert compose(jamo) == s
    block = "".join(chr(c) for c in range(S_BASE, S_BASE + S_COUNT))
    assert compose(decompose(block)) == block
    assert S_COUNT == 11172 and chr(S_BASE + S_COUNT - 1) == "\ud7a3"


def test_examples_and_other_characters_kept() -> None:
    assert decompose("한국") == "\u1112\u1161\u11ab\u1100\u116e\u11a8"
    assert decompose("가") == "\u1100\u1161"  # no trailing consonant
    other = "ㅋㅋ AI 2024 😀 漢字 \u1100"
    assert decompose(other) == other and compose(other) == other
    assert compose(decompose("값을 냈다 ㄱ")) == "값을 냈다 ㄱ"

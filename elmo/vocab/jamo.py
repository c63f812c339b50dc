"""Hangul syllable ↔ jamo by Unicode arithmetic (The Unicode Standard, §3.12 "Conjoining Jamo Behavior").

A precomposed syllable S in U+AC00..U+D7A3 (11,172 of them) is ``0xAC00 + (L*21 + V)*28 + T`` with
leading consonant L (19), vowel V (21) and trailing consonant T (0 = none, 1..27). It decomposes
into the conjoining jamo ``U+1100+L``, ``U+1161+V`` and, when T > 0, ``U+11A7+T``. Leading and
trailing consonants stay distinct characters (ᄀ U+1100 vs ᆨ U+11A8), so the decomposition is
lossless; every other character (compatibility jamo such as ㅋ, Latin, digits, emoji) is kept.
This is exactly what NFD does to Hangul syllables; it is done here with a table for speed.
"""

from __future__ import annotations

S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
N_COUNT = V_COUNT * T_COUNT  # 588
S_COUNT = L_COUNT * N_COUNT  # 11172


def is_syllable(ch: str) -> bool:
    return S_BASE <= ord(ch) < S_BASE + S_COUNT


def decompose_syllable(ch: str) -> str:
    """The 2 or 3 conjoining jamo of a Hangul syllable; any other character unchanged."""
    s = ord(ch) - S_BASE
    if not 0 <= s < S_COUNT:
        return ch
    lead, vowel, tail = s // N_COUNT, (s % N_COUNT) // T_COUNT, s % T_COUNT
    out = chr(L_BASE + lead) + chr(V_BASE + vowel)
    return out + chr(T_BASE + tail) if tail else out


_TABLE = {S_BASE + i: decompose_syllable(chr(S_BASE + i)) for i in range(S_COUNT)}


def decompose(text: str) -> str:
    """Every Hangul syllable of ``text`` decomposed into jamo; other characters kept."""
    return text.translate(_TABLE)


def compose(text: str) -> str:
    """Inverse of :func:`decompose`: L V [T] jamo sequences become syllables again."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        lead = ord(text[i]) - L_BASE
        if 0 <= lead < L_COUNT and i + 1 < n and 0 <= (vowel := ord(text[i + 1]) - V_BASE) < V_COUNT:
            tail = 0
            if i + 2 < n and 0 < (t := ord(text[i + 2]) - T_BASE) < T_COUNT:
                tail = t
            out.append(chr(S_BASE + (lead * V_COUNT + vowel) * T_COUNT + tail))
            i += 3 if tail else 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)

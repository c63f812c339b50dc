"""Make text safe for a morphological analyser, identically for the pipeline and for raw input.

The clean stage already normalises the petitions; this is the small, idempotent part every input
to the tagger needs (raw YNAT headlines included), so that the same string always gives the same
tokens and no token can contain whitespace:

* Unicode NFC (Hangul syllables composed),
* control and format characters (categories Cc and Cf that are not whitespace: NUL, zero-width
  space/joiner, soft hyphen, bidi marks, BOM, …) removed,
* every run of Unicode whitespace (including NBSP and the ideographic space, which MeCab would
  otherwise emit as tokens) replaced by one ASCII space; leading and trailing spaces dropped.

``lines`` does the same but keeps line breaks as boundaries (a line break always ends a sentence).
"""

from __future__ import annotations

import re
import unicodedata

# Python's str.splitlines() boundaries: \n \v \f \r \x1c \x1d \x1e \x85 \u2028 \u2029.
_LINE_BREAK = re.compile("[\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029]+")


def _removed_class() -> re.Pattern[str]:
    # Cc/Cf characters live only in planes 0, 1 and 14 (tags); scanning those keeps import fast.
    planes = (range(0x0, 0x20000), range(0xE0000, 0xF0000))
    chars = [
        chr(c)
        for plane in planes
        for c in plane
        if unicodedata.category(chr(c)) in ("Cc", "Cf") and not chr(c).isspace()
    ]
    return re.compile("[" + "".join(re.escape(c) for c in chars) + "]+")


_REMOVE = _removed_class()


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _prepare(text: str) -> str:
    # Remove first, then compose: removing a zero-width character can bring jamo together.
    if not text.isprintable():  # C loop; false for any Cc/Cf and any whitespace but ' '
        text = _REMOVE.sub("", text)
    return _nfc(text)


def sanitize(text: str) -> str:
    """One line of tagger-safe text: NFC, no control/format characters, single ASCII spaces."""
    return " ".join(_prepare(text).split())  # str.split() splits on exactly the Unicode whitespace


def lines(text: str) -> list[str]:
    """The non-empty lines of ``text``, each sanitized (line breaks of every kind split)."""
    text = _prepare(text)
    out = []
    for line in _LINE_BREAK.split(text):
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out

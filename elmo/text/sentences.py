"""Rule-based Korean sentence splitting (before morphological analysis).

Rules, applied to each line of the sanitized text (a line break always ends a sentence):

1. A run of terminal punctuation (``. ! ? …`` and their full-width forms), with any closing quotes
   or brackets right after it, ends a sentence when a space follows — unless the next word starts
   with more terminal punctuation. Decimal numbers (``3.5``), URLs and abbreviations without a
   following space are therefore never split.
2. An enumerator is not a sentence: a single ``.`` right after a word that is 1–3 digits or a
   single Latin letter (``1. 첫째``, ``a. 항목``) does not split.
3. A word ending in the formal declarative/interrogative ending ``니다`` (합니다, 입니다, 습니다)
   ends a sentence when a space follows, even without punctuation — petitions often omit it.

Sentences that are still too long are cut after tagging (see ``Tokenizer.tokenize_text``).
"""

from __future__ import annotations

import re

from elmo.text.sanitize import lines

_TERMINAL = ".!?…。！？‼⁇⁈⁉"
_CLOSING = "\"'”’»」』》〉）)\\]}"
_BOUNDARY = re.compile(
    rf"(?:(?P<punct>[{re.escape(_TERMINAL)}]+)[{re.escape(_CLOSING)}]*|니다)"
    rf"(?= (?![{re.escape(_TERMINAL)}]))"
)
_ENUMERATOR = re.compile(r"(?:\d{1,3}|[A-Za-z])")


def _split_line(line: str) -> list[str]:
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(line):
        punct = m.group("punct")
        if punct == ".":
            word_start = line.rfind(" ", start, m.start()) + 1
            word_start = max(word_start, start)
            if _ENUMERATOR.fullmatch(line, word_start, m.start()):
                continue
        end = m.end()
        piece = line[start:end].strip()
        if piece:
            out.append(piece)
        start = end + 1  # skip the space the boundary is followed by
    rest = line[start:].strip()
    if rest:
        out.append(rest)
    return out


def split_sentences(text: str) -> list[str]:
    """Sanitized, non-empty sentences of ``text`` in order (see the module docstring for the rules)."""
    return [s for line in lines(text) for s in _split_line(line)]

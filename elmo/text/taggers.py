"""The morphological analysers the tokenize stage can use, behind one small interface.

``make_tagger(name)`` returns an object with ``pos(sentence) -> (surfaces, tags)`` for a sanitized
sentence. ``mecab`` is the fast MeCab-ko path (:mod:`elmo.text.mecab`); ``okt`` and ``komoran`` are
konlpy's classes, which run in a Java VM inside the process (konlpy starts it through JPype), so
they need a Java runtime; we check for one first and say so clearly.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from elmo.errors import StageError
from elmo.text.mecab import MecabTagger

TAGGERS = ("mecab", "okt", "komoran")
_NON_BMP = re.compile("([\U00010000-\U0010FFFF]+)")
JAVA_TAGGERS = ("okt", "komoran")


def find_java() -> Path:
    """The java executable konlpy will use ($JAVA_HOME/bin/java, else java on PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return Path(home) / "bin" / "java"
    found = shutil.which("java")
    if found:
        return Path(found)
    raise StageError(
        "tokenize.tagger okt/komoran runs konlpy's Java classes, but no Java runtime was found "
        "(neither $JAVA_HOME/bin/java nor java on PATH): install one (e.g. apt-get install "
        "openjdk-17-jre-headless) or set tokenize.tagger: mecab"
    )


class KonlpyJavaTagger:
    """konlpy's Okt (no normalisation, no stemming) or Komoran."""

    def __init__(self, name: str) -> None:
        find_java()
        from konlpy.tag import Komoran, Okt

        self.name = name
        self._tagger = Okt() if name == "okt" else Komoran()

    def pos(self, sentence: str) -> tuple[list[str], list[str]]:
        if self.name == "okt":
            pairs = self._tagger.pos(sentence, norm=False, stem=False)
            return [s for s, _ in pairs], [t for _, t in pairs]
        # Komoran hands characters outside the BMP (emoji) back as broken surrogates that JPype
        # cannot decode; analyse the text between them, and make each run of them one token
        # tagged SW (Sejong: other symbol).
        surfaces, tags = [], []
        for i, piece in enumerate(_NON_BMP.split(sentence)):
            if i % 2:
                surfaces.append(piece)
                tags.append("SW")
            elif piece.strip():
                for s, t in self._tagger.pos(piece.strip()):
                    surfaces.append(s)
                    tags.append(t)
        return surfaces, tags


def make_tagger(name: str):
    if name == "mecab":
        return MecabTagger()
    if name in JAVA_TAGGERS:
        return KonlpyJavaTagger(name)
    raise StageError(f"tokenize.tagger: unknown tagger {name!r} (one of {', '.join(TAGGERS)})")

"""The tokenizer: sentence splitting + morphological analysis, the same for pipeline and raw input.

>>> tok = Tokenizer(tagger="mecab")
>>> tok.tokenize("영등포구청역에 있는 맛집 좀 알려주세요.")
['영등포구청역', '에', '있', '는', '맛집', '좀', '알려', '주', '세요', '.']

``tokenize_text`` is what the tokenize stage runs on each title/content: split into sentences,
analyse each, and cut any sentence longer than ``max_sentence_tokens`` into pieces — after the
last sentence-final ending (tags ``EF``, ``…+EF``) or final punctuation (``SF``) in the window's
second half when there is one, else hard at the limit (Okt's tag set has no ``EF``, so its long
sentences are cut after final punctuation or hard).

``Tokenizer.from_config(tok.config())`` rebuilds an identical tokenizer; the config travels with
the vocabulary and the models, so a finetuned classifier analyses raw headlines exactly as the
pretraining corpus was analysed.
"""

from __future__ import annotations

from typing import Any

from elmo.errors import StageError
from elmo.text.sanitize import sanitize
from elmo.text.sentences import _TERMINAL, split_sentences
from elmo.text.taggers import TAGGERS, make_tagger

_KEYS = ("tagger", "pos_tags", "max_sentence_tokens")


def _is_final(surface: str, tag: str) -> bool:
    return tag == "SF" or tag.endswith("EF") or (tag == "Punctuation" and surface[-1] in _TERMINAL)


class Tokenizer:
    def __init__(self, tagger: str = "mecab", pos_tags: bool = False, max_sentence_tokens: int = 100) -> None:
        if tagger not in TAGGERS:
            raise StageError(f"tokenize.tagger: unknown tagger {tagger!r} (one of {', '.join(TAGGERS)})")
        if max_sentence_tokens < 2:
            raise StageError(f"tokenize.max_sentence_tokens must be at least 2, got {max_sentence_tokens}")
        self.tagger_name = tagger
        self.pos_tags = bool(pos_tags)
        self.max_sentence_tokens = int(max_sentence_tokens)
        self._tagger = None  # created on first use (a Java tagger starts a JVM)

    @classmethod
    def from_params(cls, p) -> Tokenizer:
        """From the ``tokenize`` section of params.yaml (``elmo.params.tokenize.TokenizeParams``)."""
        return cls(tagger=p.tagger, pos_tags=p.pos_tags, max_sentence_tokens=p.max_sentence_tokens)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        missing = [k for k in _KEYS if k not in config]
        if missing:
            raise StageError(f"tokenizer config lacks {', '.join(missing)} (got {sorted(config)})")
        return cls(**{k: config[k] for k in _KEYS})

    def config(self) -> dict[str, Any]:
        return {"tagger": self.tagger_name, "pos_tags": self.pos_tags, "max_sentence_tokens": self.max_sentence_tokens}

    def __repr__(self) -> str:
        return f"Tokenizer({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    @property
    def tagger(self):
        if self._tagger is None:
            self._tagger = make_tagger(self.tagger_name)
        return self._tagger

    def __getstate__(self) -> dict[str, Any]:
        return self.config()  # the tagger itself is not picklable; rebuilt where it is used

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def split_sentences(self, text: str) -> list[str]:
        """Sanitized sentences of ``text`` (rules in :mod:`elmo.text.sentences`)."""
        return split_sentences(text)

    def _format(self, surfaces: list[str], tags: list[str]) -> list[str]:
        if self.pos_tags:
            return [f"{s}/{t}" for s, t in zip(surfaces, tags)]
        return surfaces

    def _analyse(self, sentence: str) -> tuple[list[str], list[str]]:
        """Surfaces and tags of a sanitized sentence; no surface is empty or holds a space."""
        surfaces, tags = self.tagger.pos(sentence)
        if " " in "".join(surfaces) or "" in surfaces:
            # MeCab-ko keeps the following space on some surfaces ('K-에듀 완성' → '에듀 '), and
            # konlpy passes it on; a token must never hold whitespace (vocab files are line/tab
            # separated), so inner runs become '_' and outer spaces go.
            pairs = [("_".join(s.split()), t) for s, t in zip(surfaces, tags)]
            surfaces = [s for s, _ in pairs if s]
            tags = [t for s, t in pairs if s]
        return surfaces, tags

    def tokenize(self, sentence: str) -> list[str]:
        """Tokens of one sentence (sanitized first; never cut, whatever its length)."""
        sentence = sanitize(sentence)
        if not sentence:
            return []
        return self._format(*self._analyse(sentence))

    def tokenize_text(self, text: str) -> list[list[str]]:
        """Token lists of the sentences of ``text``, long ones cut (see the module docstring)."""
        return self.analyse_text(text)[0]

    def analyse_text(self, text: str) -> tuple[list[list[str]], int]:
        """``(token lists, number of sentences that were cut into pieces)`` for ``text``."""
        out: list[list[str]] = []
        cut = 0
        for sentence in split_sentences(text):
            surfaces, tags = self._analyse(sentence)
            pieces = self._pieces(surfaces, tags)
            cut += len(pieces) > 1
            for a, b in pieces:
                if b > a:
                    out.append(self._format(surfaces[a:b], tags[a:b]))
        return out, cut

    def _pieces(self, surfaces: list[str], tags: list[str]) -> list[tuple[int, int]]:
        n, limit = len(surfaces), self.max_sentence_tokens
        if n <= limit:
            return [(0, n)]
        pieces, start = [], 0
        while n - start > limit:
            end = start + limit
            cut = end
            for i in range(end - 1, start + limit // 2 - 1, -1):
                if _is_final(surfaces[i], tags[i]):
                    cut = i + 1
                    break
            pieces.append((start, cut))
            start = cut
        pieces.append((start, n))
        return pieces

"""The vocabulary a biLM is trained with: words + characters + the tokenizer that made the tokens.

A vocabulary directory (``data/processed/vocab/``, copied into every model) holds:

* ``words.txt`` — ``word<TAB>count`` in id order (:mod:`elmo.vocab.words`),
* ``chars.txt`` — the character units in id order (:mod:`elmo.vocab.chars`),
* ``vocab.json`` — the config (word and char settings, the tokenizer config) and ``sha256``, a hash
  of the config and both files: the same data and params always give the same hash, and
  :meth:`Vocabulary.load` refuses files that do not match it;
* ``text_pipeline.json`` — the corpus's text pipeline (normaliser + tokenizer settings,
  :mod:`elmo.text.pipeline`), written by the vocab stage: how raw text becomes tokens for this model.

>>> vocab = Vocabulary.load("data/processed/vocab")
>>> vocab.word_ids(["청원", "합니다"])          # (n,) int64
>>> vocab.char_ids(["청원", "합니다"])          # (n, max_chars_per_token) int64
>>> vocab.type_table(["청원", "합니다"])         # (type_chars, type_words) for elmo.data.batch.encode_batch
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elmo.errors import StageError
from elmo.io import atomic_path, atomic_write_json, atomic_write_text
from elmo.vocab.chars import BOS, EOS, UNK, CharVocab
from elmo.vocab.words import BOS_ID, EOS_ID, PAD_ID, UNK_ID, WORD_SPECIALS, WordVocab

VOCAB_JSON, WORDS_TXT, CHARS_TXT = "vocab.json", "words.txt", "chars.txt"
FILES = (VOCAB_JSON, WORDS_TXT, CHARS_TXT)
FORMAT = 1


def _content_hash(config: dict[str, Any], words_text: str, chars_text: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for part in (words_text, chars_text):
        h.update(b"\0")
        h.update(part.encode("utf-8"))
    return h.hexdigest()


class Vocabulary:
    PAD, UNK, BOS, EOS = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, words: WordVocab, chars: CharVocab, tokenizer: dict[str, Any]) -> None:
        self.words = words
        self.chars = chars
        self.tokenizer_config = dict(tokenizer)
        self._char_cache: dict[str, np.ndarray] = {}

    # --- identity -------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"format": FORMAT, "words": self.words.config(), "chars": self.chars.config(),
                "tokenizer": self.tokenizer_config}

    @property
    def sha256(self) -> str:
        return _content_hash(self.config(), self.words.to_text(), self.chars.to_text())

    @property
    def size(self) -> int:
        """Number of word ids (the softmax size)."""
        return len(self.words)

    @property
    def char_size(self) -> int:
        """Number of character ids (the char embedding size)."""
        return self.chars.size

    @property
    def max_chars_per_token(self) -> int:
        return self.chars.max_chars_per_token

    def __repr__(self) -> str:
        return (f"Vocabulary(words={self.size}, chars={self.char_size} {self.chars.unit}, "
                f"max_chars_per_token={self.max_chars_per_token}, sha256={self.sha256[:12]})")

    # --- files ----------------------------------------------------------------------------------
    def save(self, directory: str | Path, extra_json: dict[str, Any] | None = None) -> Path:
        """Write the three files into ``directory`` (atomically, as a whole directory), with
        ``extra_json`` (file name -> document) beside them: the vocab stage adds the text pipeline."""
        directory = Path(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            for name, doc in (extra_json or {}).items():
                atomic_write_json(tmp / name, doc)
            atomic_write_text(tmp / WORDS_TXT, self.words.to_text())
            atomic_write_text(tmp / CHARS_TXT, self.chars.to_text())
            atomic_write_json(tmp / VOCAB_JSON, {**self.config(), "sha256": self.sha256})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        directory = Path(directory)
        for name in FILES:
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name}: no such file (a vocabulary directory holds "
                                        f"{', '.join(FILES)}; it is written by `elmo vocab`)")
        try:
            meta = json.loads((directory / VOCAB_JSON).read_text(encoding="utf-8"))
            wc, cc, tok = meta["words"], meta["chars"], meta["tokenizer"]
            if meta.get("format") != FORMAT:
                raise StageError(f"{directory / VOCAB_JSON}: format {meta.get('format')!r}, this code reads {FORMAT}")
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise StageError(f"{directory / VOCAB_JSON}: not a vocabulary description "
                             f"({type(err).__name__}: {err})") from None
        words_text = (directory / WORDS_TXT).read_text(encoding="utf-8")
        chars_text = (directory / CHARS_TXT).read_text(encoding="utf-8")
        words = WordVocab.from_text(words_text, wc.get("min_count", 1), wc.get("max_size"),
                                    where=str(directory / WORDS_TXT))
        chars = CharVocab.from_text(chars_text, cc["unit"], cc["max_chars_per_token"], cc.get("min_count", 1),
                                    where=str(directory / CHARS_TXT))
        vocab = cls(words, chars, tok)
        if vocab.sha256 != meta.get("sha256"):
            raise StageError(f"{directory}: {WORDS_TXT}/{CHARS_TXT} do not match the sha256 in {VOCAB_JSON} "
                             f"(edited or copied from another build?); rebuild with `elmo vocab`")
        return vocab

    def with_more_chars(self, token_counts, min_count: int) -> tuple[Vocabulary, list[str]]:
        """The same words with the characters of ``token_counts`` (token -> frequency) the character
        vocabulary lacks, seen at least ``min_count`` times, appended (:meth:`CharVocab.extended`);
        and those characters. Used where a trained biLM meets new text (finetune's adapt, pretrain's
        ``init: previous``): word ids and existing character ids never move."""
        chars, added = self.chars.extended(token_counts, min_count)
        return (Vocabulary(self.words, chars, self.tokenizer_config) if added else self), added

    # --- encoding -------------------------------------------------------------------------------
    def word_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """(n,) int64 word ids; out-of-vocabulary tokens get <unk> (1)."""
        return self.words.ids(tokens)

    def char_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """(n, max_chars_per_token) int64 character ids of plain tokens (see elmo.vocab.chars)."""
        out = np.zeros((len(tokens), self.max_chars_per_token), dtype=np.int64)
        cache = self._char_cache
        for i, token in enumerate(tokens):
            row = cache.get(token)
            if row is None:
                row = self.chars.encode(token)
                if len(cache) < 200_000:
                    cache[token] = row
            out[i] = row
        return out

    def special_char_rows(self) -> np.ndarray:
        """(4, C) character ids of the word specials <pad>, <unk>, <bos>, <eos> (type ids 0..3)."""
        rows = np.zeros((len(WORD_SPECIALS), self.max_chars_per_token), dtype=np.int64)
        rows[UNK_ID] = self.chars.special_row(UNK)
        rows[BOS_ID] = self.chars.special_row(BOS)
        rows[EOS_ID] = self.chars.special_row(EOS)
        return rows

    def type_table(self, types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(type_chars (4 + n, C), type_words (4 + n,))`` for the specials followed by ``types``."""
        type_chars = np.concatenate([self.special_char_rows(), self.chars.encode_many(types)])
        type_words = np.concatenate([np.arange(len(WORD_SPECIALS), dtype=np.int64), self.word_ids(types)])
        return type_chars, type_words

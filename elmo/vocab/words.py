"""The word vocabulary: the softmax targets of the biLM.

Ids: ``<pad>`` 0, ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3, then the words of the train split seen at
least ``min_count`` times, most frequent first (ties in code point order), at most ``max_size``
entries in all. Frequency order lets the model use a sampled or adaptive softmax directly.

Only words are looked up: a token that happens to read ``<unk>`` or ``<pad>`` is an ordinary
out-of-vocabulary string (id 1), never a special. ``words.txt`` is ``word<TAB>count`` per line in id
order (specials' counts: <unk> = out-of-vocabulary train tokens, <bos>/<eos> = train sentences).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from elmo.errors import StageError

WORD_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


class WordVocab:
    def __init__(self, words: Sequence[str], counts: Sequence[int], min_count: int = 1,
                 max_size: int | None = None) -> None:
        if tuple(words[:4]) != WORD_SPECIALS:
            raise StageError(f"word vocabulary must start with {' '.join(WORD_SPECIALS)}")
        self.words = list(words)
        self.counts = [int(c) for c in counts]
        self.min_count = int(min_count)
        self.max_size = max_size
        self.index = {w: i for i, w in enumerate(self.words) if i >= len(WORD_SPECIALS)}
        if len(self.index) != len(self.words) - len(WORD_SPECIALS):
            raise StageError("word vocabulary has duplicate entries")

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, sorted_counts: Iterable[tuple[str, int]], *, min_count: int, max_size: int,
              n_sentences: int, n_tokens: int) -> WordVocab:
        """From ``(word, count)`` pairs already sorted by count descending, then word."""
        words, counts = list(WORD_SPECIALS), [0, 0, n_sentences, n_sentences]
        for word, count in sorted_counts:
            if count < min_count or len(words) >= max_size:
                break
            words.append(word)
            counts.append(count)
        counts[UNK_ID] = n_tokens - sum(counts[len(WORD_SPECIALS):])
        return cls(words, counts, min_count=min_count, max_size=max_size)

    def config(self) -> dict:
        return {"size": len(self), "min_count": self.min_count, "max_size": self.max_size,
                "specials": list(WORD_SPECIALS)}

    def to_text(self) -> str:
        return "".join(f"{w}\t{c}\n" for w, c in zip(self.words, self.counts))

    @classmethod
    def from_text(cls, text: str, min_count: int = 1, max_size: int | None = None,
                  where: str = "words.txt") -> WordVocab:
        words, counts = [], []
        for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
            word, sep, count = line.rpartition("\t")
            if not sep or not word or not count.isdigit():
                raise StageError(f"{where}: line {n}: expected word<TAB>count, got {line[:80]!r}")
            words.append(word)
            counts.append(int(count))
        return cls(words, counts, min_count=min_count, max_size=max_size)

    def id(self, word: str) -> int:
        return self.index.get(word, UNK_ID)

    def ids(self, words: Sequence[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(w, UNK_ID) for w in words), dtype=np.int64, count=len(words))

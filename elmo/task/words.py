"""The task model's own word vocabulary (for its trainable word embedding), built on the train split.

Distinct from the biLM's vocabulary (elmo/vocab, built on the petitions): the task's words are
those of its training texts. ``words.txt`` holds one token a line, id = line number - 1; ids 0 and
1 are ``<pad>`` and ``<unk>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from elmo.io import atomic_write_text

PAD, UNK = "<pad>", "<unk>"


class TaskWords:
    def __init__(self, words: Sequence[str]) -> None:
        if list(words[:2]) != [PAD, UNK]:
            raise ValueError(f"a task vocabulary starts with {PAD} and {UNK}, got {list(words[:2])}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a task vocabulary has duplicate words")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1) -> TaskWords:
        counts = Counter(w for toks in token_lists for w in toks)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK)),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        return np.array([self.index.get(w, 1) for w in tokens], dtype=np.int64)

    def save(self, path: str | Path) -> None:
        if any("\n" in w for w in self.words):
            raise ValueError("a word contains a newline")
        atomic_write_text(path, "\n".join(self.words) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TaskWords:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return cls(path.read_text(encoding="utf-8").rstrip("\n").split("\n"))

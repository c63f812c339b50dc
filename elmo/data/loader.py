"""The sentence dataset over the memory-mapped arrays, and the bucketing DataLoader.

>>> vocab = Vocabulary.load("data/processed/vocab")
>>> train = SentenceDataset("data/processed/arrays", "train", vocab)   # checks the vocab hash
>>> loader = make_loader(train, batch_size=64, shuffle=True, seed=1234)
>>> for batch in loader: ...      # elmo.data.batch.Batch: chars, tokens, mask, fwd/bwd targets

Items are numpy arrays of type ids (one sentence each); ``SentenceDataset.collate`` turns a list
of them into a :class:`Batch` through the dataset's type tables. Works with ``num_workers > 0``
(memory maps are reopened in each worker).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from elmo.data.arrays import SentenceArrays
from elmo.data.batch import Batch, collate_types
from elmo.data.sampler import BucketBatchSampler


class SentenceDataset(Dataset):
    def __init__(self, arrays_dir: str | Path, split: str, vocab=None) -> None:
        self.arrays = SentenceArrays(arrays_dir, split, vocab)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.arrays.sentence(int(i))

    def __getitems__(self, indices: list[int]) -> list[np.ndarray]:  # one call per batch
        off, toks = self.arrays.offsets, self.arrays.tokens
        return [toks[off[i]:off[i + 1]] for i in indices]

    @property
    def lengths(self) -> np.ndarray:
        return self.arrays.lengths

    def collate(self, seqs: list[np.ndarray]) -> Batch:
        return collate_types(seqs, self.arrays.type_chars, self.arrays.type_words)

    def with_type_tables(self, type_chars: np.ndarray, type_words: np.ndarray) -> SentenceDataset:
        """The same sentences through another vocabulary's type tables (``Vocabulary.type_table`` of
        ``elmo.data.arrays.read_types``): see :meth:`SentenceArrays.with_type_tables`."""
        other = SentenceDataset.__new__(SentenceDataset)
        other.arrays = self.arrays.with_type_tables(type_chars, type_words)
        return other


class SentenceSubset:
    """Some sentences of a :class:`SentenceDataset` (by index), with the interface the batch
    planners use (``lengths``, ``__getitems__``, ``collate``): e.g. one month's valid sentences."""

    def __init__(self, dataset: SentenceDataset, indices: np.ndarray) -> None:
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def lengths(self) -> np.ndarray:
        return self.dataset.lengths[self.indices]

    def __getitems__(self, indices: list[int]) -> list[np.ndarray]:
        return self.dataset.__getitems__([int(self.indices[i]) for i in indices])

    def collate(self, seqs: list[np.ndarray]) -> Batch:
        return self.dataset.collate(seqs)


def make_loader(dataset: SentenceDataset, *, batch_size: int | None = None, max_tokens: int | None = None,
                shuffle: bool = True, seed: int = 0, drop_last: bool = False, num_workers: int = 0,
                pin_memory: bool = False, pool_batches: int = 100) -> DataLoader:
    """A DataLoader of :class:`Batch` over ``dataset`` with a :class:`BucketBatchSampler`.

    Give ``batch_size`` (sentences) or ``max_tokens`` (padded positions per batch).
    """
    sampler = BucketBatchSampler(dataset.lengths, batch_size=batch_size, max_tokens=max_tokens, shuffle=shuffle,
                                 seed=seed, pool_batches=pool_batches, drop_last=drop_last)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)

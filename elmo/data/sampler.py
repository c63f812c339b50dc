"""Bucketing: batches of whole sentences of similar length, every sentence exactly once an epoch.

Each epoch (seeded by ``seed`` and the epoch number, so runs repeat exactly):

1. shuffle all sentence indices,
2. cut them into pools of ``pool_batches`` batches' worth of sentences, sort each pool by length,
3. cut each pool into batches — ``batch_size`` sentences, or (``max_tokens``) as many sentences as
   fit in ``max_tokens`` padded positions (B × T, with T counting <bos>/<eos>); a sentence longer
   than the budget gets a batch of its own —
4. shuffle the order of the batches.

Sorting inside pools keeps padding small while batches still mix different parts of the corpus.
With ``batch_size`` and pools that are whole multiples of it, the number of batches is the same
every epoch (``ceil(n / batch_size)``, or ``floor`` with ``drop_last``).

``set_epoch(e)`` picks the epoch (Lightning calls it on a loader's batch sampler); without it the
sampler moves to the next epoch each time it is iterated to the end.

Steps 1-4 are :func:`length_batches`, the project's one length batcher: the sampler (pretrain),
the classifier's batches (elmo/task/train.py ``make_batches``: 50-batch pools), adapt's
(elmo/task/adapt.py: pools of 4096 sentences, a token budget cut across pool boundaries) and
ELMo's (elmo/embed/elmo.py ``Elmo.batches``: no shuffle, one pool) are its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def length_batches(lengths: Sequence[int] | np.ndarray, *, batch_size: int | None = None,
                   max_tokens: int | None = None, rng: np.random.Generator | None = None,
                   pool: int | None = None, cut_at_pools: bool = True, drop_last: bool = False) -> list[np.ndarray]:
    """Batches (arrays of indices into ``lengths``) of sentences of similar length, each sentence once.

    1. the order: ``rng.permutation(n)``, or 0..n-1 without ``rng``;
    2. cut into pools of ``pool`` sentences (None: one pool), each sorted by length (stable);
    3. cut into batches of ``batch_size`` sentences, or greedily of at most ``max_tokens`` padded
       positions (sentences x the longest, ``length + 2`` with <bos>/<eos>; a longer sentence gets a
       batch of its own) — inside each pool (``cut_at_pools``) or along the pools one after the other;
       ``drop_last``: without the batches shorter than ``batch_size``;
    4. with ``rng``: the batches in the order of ``rng.permutation(len(batches))``.
    """
    if (batch_size is None) == (max_tokens is None):
        raise ValueError("give exactly one of batch_size (sentences per batch) or max_tokens (padded tokens per batch)")
    lengths = np.asarray(lengths)
    n = len(lengths)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    pool = n if pool is None else pool
    pools = [c[np.argsort(lengths[c], kind="stable")] for c in (order[i:i + pool] for i in range(0, n, max(pool, 1)))]
    if not cut_at_pools and pools:
        pools = [np.concatenate(pools)]
    batches: list[np.ndarray] = []
    for chunk in pools:
        if batch_size is not None:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        else:
            batches.extend(_token_batches(chunk, lengths, max_tokens))
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _token_batches(chunk: np.ndarray, lengths: np.ndarray, max_tokens: int) -> Iterator[np.ndarray]:
    start, longest = 0, 0
    for i, idx in enumerate(chunk):
        longest_if_added = max(longest, int(lengths[idx]) + 2)
        if i > start and longest_if_added * (i - start + 1) > max_tokens:
            yield chunk[start:i]
            start, longest_if_added = i, int(lengths[idx]) + 2
        longest = longest_if_added
    if start < len(chunk):
        yield chunk[start:]


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths: Sequence[int] | np.ndarray, *, batch_size: int | None = None,
                 max_tokens: int | None = None, shuffle: bool = True, seed: int = 0,
                 pool_batches: int = 100, drop_last: bool = False) -> None:
        if (batch_size is None) == (max_tokens is None):
            raise ValueError("give exactly one of batch_size (sentences per batch) "
                             "or max_tokens (padded tokens per batch)")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_tokens is not None and max_tokens < 3:
            raise ValueError(f"max_tokens must be at least 3 (<bos>, a word, <eos>), got {max_tokens}")
        if drop_last and max_tokens is not None:
            raise ValueError("drop_last applies to batch_size batching only")
        self.lengths = np.asarray(lengths, dtype=np.int64) + 2  # with <bos> and <eos>
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = max(1, pool_batches)
        self.drop_last = drop_last
        self.epoch = 0
        self._plan: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _batches(self) -> list[np.ndarray]:
        if self._plan is not None and self._plan[0] == self.epoch:
            return self._plan[1]
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.batch_size is not None:
            pool = self.batch_size * self.pool_batches
        else:
            mean = float(self.lengths.mean()) if n else 1.0
            pool = max(1, int(self.max_tokens / mean) * self.pool_batches)
        batches = length_batches(self.lengths - 2, batch_size=self.batch_size, max_tokens=self.max_tokens,
                                 rng=rng if self.shuffle else None, pool=pool, drop_last=self.drop_last)
        self._plan = (self.epoch, batches)
        return batches

    def __len__(self) -> int:
        if self.batch_size is not None:
            n = len(self.lengths)
            if not self.drop_last:
                return math.ceil(n / self.batch_size)
            # every pool is a whole number of batches except the last one
            return n // self.batch_size
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        for b in batches:
            yield b.tolist()
        self._plan = None
        self.epoch += 1

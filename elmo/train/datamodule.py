"""The biLM's data under Lightning: elmo/data's bucketed batches, sharded over ranks, resumable.

An epoch's batches are a pure function of (seed, epoch) — elmo.data's BucketBatchSampler — and
the training stream is a pure function of the global step: a resumed run (Lightning restores the
step from the checkpoint before it pulls a batch) continues with exactly the batch an
uninterrupted run would have taken next.

Under DDP rank r of W takes batches r, r+W, ... of each epoch; every rank gets the same number
(the last ``n mod W`` batches of an epoch are left out, a different few each epoch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np

from elmo.data.batch import Batch
from elmo.data.loader import SentenceDataset
from elmo.data.sampler import BucketBatchSampler

VALID_SEED = 0  # fixed: the validation subset and its order never change between runs


class StepBatches:
    """The endless stream of training batches: the batch of step s is a pure function of s.

    ``plan(epoch)`` gives an epoch's batches as arrays of sentence indices; ``collate`` makes a
    :class:`Batch`. Iteration starts at the step ``first_step()`` returns *when the first batch is
    pulled* (Lightning has restored a checkpoint's step by then, and may call ``iter`` early just
    to check the loader). No ``__len__``: the run ends at max_steps (or the opt-in max_minutes), and
    epochs are this stream's business (an epoch has ``len(plan(e)) // world`` steps).
    """

    def __init__(self, plan: Callable[[int], list[np.ndarray]], collate: Callable[[list[int]], Any], *,
                 rank: int = 0, world: int = 1, first_step: Callable[[], int] = lambda: 0) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside world size {world}")
        self.plan, self.collate = plan, collate
        self.rank, self.world = rank, world
        self.first_step = first_step

    def steps_in_epoch(self, epoch: int) -> int:
        return len(self.plan(epoch)) // self.world

    def shard(self, epoch: int) -> list[np.ndarray]:
        return self.plan(epoch)[self.rank:self.steps_in_epoch(epoch) * self.world:self.world]

    def __iter__(self) -> Iterator[Any]:
        epoch, i = locate(self.first_step(), self.steps_in_epoch)
        while True:
            for idx in self.shard(epoch)[i:]:
                yield self.collate(idx.tolist())
            epoch, i = epoch + 1, 0

    # Lightning saves and restores this with the checkpoint (a loader with state_dict is
    # "resumable"); the position itself comes from the global step, so this only checks that a
    # resumed run reads the same data.
    def state_dict(self) -> dict:
        return {"rank": self.rank, "world": self.world, "epoch0_batches": len(self.plan(0))}

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        if state.get("epoch0_batches") != mine["epoch0_batches"] or state.get("world") != mine["world"]:
            raise RuntimeError(f"the checkpoint was written with other data or another world size ({state} != {mine}); "
                               "start afresh (pretrain.resume: false) or restore the matching data")


def collate_indices(dataset: SentenceDataset) -> Callable[[list[int]], Batch]:
    """Sentence indices -> :class:`Batch` (one memory-map read per batch)."""
    def collate(indices: list[int]) -> Batch:
        return dataset.collate(dataset.__getitems__(indices))
    return collate


def locate(step: int, plan_len: Callable[[int], int]) -> tuple[int, int]:
    """(epoch, batches already done in it) after ``step`` optimizer steps, one batch per step."""
    epoch = 0
    while True:
        n = plan_len(epoch)
        if n <= 0:
            raise ValueError("an epoch without batches: the training split is smaller than the number of devices")
        if step < n:
            return epoch, step
        step -= n
        epoch += 1


class BucketPlan:
    """Epoch plans of a :class:`BucketBatchSampler` (cached: the sampler's plan is cheap but not free)."""

    def __init__(self, lengths: np.ndarray, *, batch_tokens: int, seed: int, shuffle: bool = True) -> None:
        self.sampler = BucketBatchSampler(lengths, max_tokens=batch_tokens, shuffle=shuffle, seed=seed)
        self._cache: dict[int, list[np.ndarray]] = {}

    def __call__(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self._cache:
            self.sampler.set_epoch(epoch)
            self._cache = {epoch: [np.asarray(b, dtype=np.int64) for b in self.sampler]}
        return self._cache[epoch]


class PretrainData(L.LightningDataModule):
    """Train/valid loaders for :class:`elmo.train.module.BiLMTask`; test is evaluated after fit."""

    def __init__(self, train: SentenceDataset, valid: SentenceDataset, *, batch_tokens: int, seed: int,
                 val_batches: int | None) -> None:
        super().__init__()
        for name, ds in (("train", train), ("valid", valid)):
            if len(ds) == 0:
                raise ValueError(f"the {name} split has no sentences")
        self.train_set, self.valid_set = train, valid
        self.batch_tokens, self.seed, self.val_batches = batch_tokens, seed, val_batches
        self.train_plan = BucketPlan(train.lengths, batch_tokens=batch_tokens, seed=seed)

    def _world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def steps_per_epoch(self, world: int = 1) -> int:
        return len(self.train_plan(0)) // world

    def train_dataloader(self) -> StepBatches:
        rank, world = self._world()
        trainer = self.trainer
        return StepBatches(self.train_plan, collate_indices(self.train_set), rank=rank, world=world,
                           first_step=lambda: trainer.global_step if trainer is not None else 0)

    def val_dataloader(self) -> FixedBatches:
        rank, world = self._world()
        return valid_batches(self.valid_set, self.batch_tokens, max_batches=self.val_batches, rank=rank, world=world)


def valid_batches(dataset: SentenceDataset, batch_tokens: int, *, max_batches: int | None = None,
                  max_tokens: int | None = None, rank: int = 0, world: int = 1) -> FixedBatches:
    """A fixed, seeded sample of batches of ``dataset`` (the first ``max_batches``, or as many
    as hold ``max_tokens`` real tokens; all by default), the same in every run, sharded over ranks.

    Shuffled with a fixed seed so a capped sample mixes short and long sentences.
    """
    plan_all = BucketPlan(dataset.lengths, batch_tokens=batch_tokens, seed=VALID_SEED)(0)
    if max_batches is not None:
        plan_all = plan_all[:max_batches]
    if max_tokens is not None:
        lengths = dataset.lengths + 2
        kept, total = [], 0
        for b in plan_all:
            if total >= max_tokens:
                break
            kept.append(b)
            total += int(lengths[b].sum())
        plan_all = kept
    if len(plan_all) < world:
        raise ValueError(f"{len(plan_all)} validation batch(es) cannot be shared by {world} processes")
    # validation may be uneven over ranks (no collective inside a step): rank r takes r::W
    return FixedBatches(plan_all[rank::world], collate_indices(dataset), dataset.lengths)


class FixedBatches:
    """The same batches on every iteration."""

    def __init__(self, batches: list[np.ndarray], collate: Callable[[list[int]], Batch], lengths: np.ndarray) -> None:
        self.batches, self.collate = batches, collate
        self.num_tokens = int(sum(int(lengths[b].sum()) + 2 * len(b) for b in batches))  # real positions

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Batch]:
        for idx in self.batches:
            yield self.collate(idx.tolist())

"""elmo.data.sampler.length_batches is the one length batcher. It replaced four: the sampler's plan
(pretrain), the classifier's make_batches, adapt's _batches and Elmo.batches. Their former bodies are
kept here as references; on random lengths every caller gets exactly the batches, in exactly the
order, that it got before (so pretraining and the finetune table do not change)."""

from __future__ import annotations

import numpy as np
import pytest

from elmo.data.sampler import BucketBatchSampler, length_batches


def _old_sampler(lengths, *, batch_size=None, max_tokens=None, shuffle=True, seed=0, pool_batches=100,
                 drop_last=False, epoch=0):  # BucketBatchSampler._batches before
    lengths = np.asarray(lengths, dtype=np.int64) + 2
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    if batch_size is not None:
        pool = batch_size * pool_batches
    else:
        pool = max(1, int(max_tokens / (float(lengths.mean()) if n else 1.0)) * pool_batches)

    def token_batches(chunk):
        start, longest = 0, 0
        for i, idx in enumerate(chunk):
            longest_if_added = max(longest, int(lengths[idx]))
            if i > start and longest_if_added * (i - start + 1) > max_tokens:
                yield chunk[start:i]
                start, longest_if_added = i, int(lengths[idx])
            longest = longest_if_added
        if start < len(chunk):
            yield chunk[start:]

    batches = []
    for start in range(0, n, pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        if batch_size is not None:
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        else:
            batches.extend(token_batches(chunk))
    if drop_last and batches:
        batches = [b for b in batches if len(b) == batch_size]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _old_make_batches(lengths, batch_size, rng):  # elmo/task/train.py before
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    order = np.concatenate([c[np.argsort(lengths[c], kind="stable")]
                            for c in (order[i:i + chunk] for i in range(0, len(order), chunk))])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _old_adapt_batches(lengths, batch_tokens, rng):  # elmo/task/adapt.py before
    order = rng.permutation(len(lengths))
    chunk = 4096
    order = np.concatenate([c[np.argsort(lengths[c], kind="stable")] for c in
                            (order[i:i + chunk] for i in range(0, len(order), chunk))])
    batches, cur, width = [], [], 0
    for i in order:
        w = int(lengths[i]) + 2
        if cur and max(width, w) * (len(cur) + 1) > batch_tokens:
            batches.append(np.array(cur))
            cur, width = [], 0
        cur.append(i)
        width = max(width, w)
    if cur:
        batches.append(np.array(cur))
    return [batches[i] for i in rng.permutation(len(batches))]


def _old_elmo_batches(token_lists, max_batch_tokens):  # Elmo.batches before
    order = sorted(range(len(token_lists)), key=lambda i: (len(token_lists[i]), i))
    batch = []
    for i in order:
        width = len(token_lists[i]) + 2
        if batch and width * (len(batch) + 1) > max_batch_tokens:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _lengths(seed: int, n: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 300, 1200])) if n is None else n
    return rng.integers(1, int(rng.choice([5, 40, 200])), size=n)


@pytest.mark.parametrize("seed", range(8))
def test_every_caller_gets_its_old_batches(seed) -> None:
    from elmo.embed.elmo import Elmo
    from elmo.task.adapt import _batches as adapt_batches
    from elmo.task.train import make_batches

    lengths = _lengths(seed)
    for kw in (dict(batch_size=32), dict(batch_size=7, drop_last=True, pool_batches=3), dict(max_tokens=256),
               dict(max_tokens=40, pool_batches=3), dict(batch_size=5, shuffle=False),
               dict(max_tokens=100, shuffle=False)):
        for epoch in (0, 3):
            s = BucketBatchSampler(lengths, seed=seed, **kw)
            s.set_epoch(epoch)
            assert _same(list(s), [b.tolist() for b in _old_sampler(lengths, seed=seed, epoch=epoch, **kw)])
    for shuffled in (False, True):
        for bs in (1, 6, 32):
            rngs = [np.random.default_rng(seed) if shuffled else None for _ in range(2)]
            assert _same(make_batches(lengths, bs, rngs[0]), _old_make_batches(lengths, bs, rngs[1]))
    for budget in (17, 2048):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert _same(adapt_batches(lengths, budget, a), _old_adapt_batches(lengths, budget, b))
        assert a.random() == b.random()  # the same draws: adapt's later epochs continue the same stream
        elmo = Elmo.__new__(Elmo)
        elmo.max_batch_tokens = budget
        tokens = [["w"] * int(n) for n in lengths[:500]]
        assert list(elmo.batches(tokens)) == list(_old_elmo_batches(tokens, budget))


def test_adapt_cuts_its_budget_across_pools_as_before() -> None:
    """More sentences than adapt's pool (4096): its batches may span two pools, unlike the sampler's."""
    from elmo.task.adapt import _batches as adapt_batches

    lengths = _lengths(1, n=4500)
    assert _same(adapt_batches(lengths, 300, np.random.default_rng(5)),
                 _old_adapt_batches(lengths, 300, np.random.default_rng(5)))


def test_length_batches_cover_every_sentence_once_within_the_budget() -> None:
    lengths = _lengths(4)
    rng = np.random.default_rng(0)
    for budgeted, batches in ((True, length_batches(lengths, max_tokens=64, rng=rng, pool=500)),
                              (True, length_batches(lengths, max_tokens=64, rng=rng, pool=500, cut_at_pools=False)),
                              (True, length_batches(lengths, max_tokens=64)),
                              (False, length_batches(lengths, batch_size=8, rng=rng, pool=80))):
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        if budgeted:
            assert all(len(b) == 1 or (lengths[b].max() + 2) * len(b) <= 64 for b in batches)
        else:
            assert all(len(b) <= 8 for b in batches)
    assert length_batches([], batch_size=4) == [] and length_batches([], max_tokens=9, rng=rng) == []
    with pytest.raises(ValueError, match="exactly one of batch_size"):
        length_batches(lengths, batch_size=3, max_tokens=30)

"""finetune's one training loop (elmo/task/loop.py), used by adapt and the task model's fit: a step
does exactly what the loops it replaced did, in their order (the same weights, bit for bit), and the
budget ends it the way elmo/budget.py names: steps, epochs, early_stop, clock."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elmo.budget import CLOCK, EARLY_STOP, EPOCHS, STEP_SLEEP_ENV, STEPS
from elmo.task.loop import TrainLoop
from elmo.train.schedule import slanted_triangular


def model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(40, 6, generator=g) * 5, torch.randint(0, 3, (40,), generator=g)
    return model, x, y


def optimizer(model, two_groups: bool):
    if not two_groups:
        return torch.optim.Adam(model.parameters(), lr=0.05)
    return torch.optim.Adam([{"params": model[0].parameters(), "lr": 0.05},
                             {"params": model[2].parameters(), "lr": 0.02}])


def batches(rng: np.random.Generator) -> list[np.ndarray]:
    return np.array_split(rng.permutation(40), 5)


def reference(two_groups: bool, steps: int) -> list[torch.Tensor]:
    """The loops as adapt and fit were written before the shared loop: lr from the schedule, forward,
    zero_grad, backward, clip, step."""
    model, x, y = model_and_data()
    opt = optimizer(model, two_groups)
    base = [g["lr"] for g in opt.param_groups]
    params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
    rng, step = np.random.default_rng(0), 0
    while step < steps:
        for idx in batches(rng):
            if step >= steps:
                break
            m = slanted_triangular(step, steps, 0.2, 8.0)
            for g, b in zip(opt.param_groups, base):
                g["lr"] = b * m
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
            step += 1
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("two_groups", [False, True])
def test_steps_give_the_weights_of_the_loops_they_replaced_bit_for_bit(two_groups: bool) -> None:
    steps = 12  # 2 passes and a part of a third over 5 batches
    model, x, y = model_and_data()
    opt = optimizer(model, two_groups)
    loop = TrainLoop(opt, grad_clip=0.5, max_steps=steps, log=lambda s: None,
                     lr_factor=lambda s: slanted_triangular(s, steps, 0.2, 8.0))
    rng, seen = np.random.default_rng(0), []
    for epoch in loop.epochs():
        for idx in loop.take(batches(rng)):
            value, n = loop.step(lambda: (torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), len(idx)))
            seen.append(n)
            assert isinstance(value, float)
    assert epoch == 3 and loop.steps == steps and len(seen) == steps and loop.ended_by == STEPS
    expected = reference(two_groups, steps)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), expected))
    # the schedule's last lr, from each group's own initial lr
    assert [g["lr"] for g in opt.param_groups] == [b * slanted_triangular(steps - 1, steps, 0.2, 8.0)
                                                  for b in ([0.05] if not two_groups else [0.05, 0.02])]


def test_frozen_parameters_are_neither_clipped_nor_stepped() -> None:
    model, x, y = model_and_data()
    opt = optimizer(model, two_groups=True)
    for p in model[0].parameters():
        p.requires_grad_(False)
    frozen = [p.detach().clone() for p in model[0].parameters()]
    loop = TrainLoop(opt, grad_clip=0.5, max_steps=3, log=lambda s: None)
    assert loop.trainable() == list(model[2].parameters())
    for _ in loop.epochs():
        for idx in loop.take(batches(np.random.default_rng(0))):
            loop.step(lambda: (torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), None))
    assert all(torch.equal(a, b) for a, b in zip(frozen, model[0].parameters()))
    assert loop.ended_by == STEPS and loop.steps == 3


def run_epochs(max_epochs: int, *, patience: int | None = None, max_seconds: float | None = None,
               improves=lambda epoch: False) -> tuple[TrainLoop, list[int]]:
    model, x, y = model_and_data()
    loop = TrainLoop(optimizer(model, False), grad_clip=5.0, max_epochs=max_epochs, max_seconds=max_seconds,
                     log=lambda s: None)
    rng, done, bad = np.random.default_rng(0), [], 0
    for epoch in loop.epochs():
        for idx in loop.take(batches(rng)):
            loop.step(lambda: (torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), None))
        done.append(epoch)
        bad = 0 if improves(epoch) else bad + 1
        if patience is not None and bad >= patience:
            loop.stop_early()
            break
    return loop, done


def test_epoch_budget_and_early_stopping() -> None:
    loop, done = run_epochs(3)
    assert done == [1, 2, 3] and loop.ended_by == EPOCHS and loop.steps == 15
    loop, done = run_epochs(6, patience=2, improves=lambda e: e == 1)
    assert done == [1, 2, 3] and loop.ended_by == EARLY_STOP
    loop, done = run_epochs(3, patience=2, improves=lambda e: e == 1)  # patience runs out on the last epoch
    assert done == [1, 2, 3] and loop.ended_by == EPOCHS


def test_clock_ends_a_step_loop_before_a_step_and_an_epoch_loop_between_epochs(monkeypatch) -> None:
    monkeypatch.setenv(STEP_SLEEP_ENV, "0.02")
    model, x, y = model_and_data()
    loop = TrainLoop(optimizer(model, False), grad_clip=5.0, max_steps=1000, max_seconds=0.05, log=lambda s: None)
    rng = np.random.default_rng(0)
    for _ in loop.epochs():
        for idx in loop.take(batches(rng)):
            loop.step(lambda: (torch.nn.functional.cross_entropy(model(x[idx]), y[idx]), None))
    assert loop.ended_by == CLOCK and 1 <= loop.steps < 1000 and loop.clock.elapsed() >= 0.05
    # an epoch loop never stops mid-epoch: whole epochs, none started that would end past the clock
    loop, done = run_epochs(50, max_seconds=0.25)
    assert loop.ended_by == CLOCK and 1 <= len(done) < 50 and loop.steps == 5 * len(done)


def test_no_clock_and_exactly_one_count_budget() -> None:
    model, _, _ = model_and_data()
    opt = optimizer(model, False)
    for bad in ({}, {"max_steps": 3, "max_epochs": 2}):
        with pytest.raises(ValueError, match="exactly one count budget"):
            TrainLoop(opt, grad_clip=1.0, **bad)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainLoop(opt, grad_clip=0.0, max_steps=1)
    loop = TrainLoop(opt, grad_clip=1.0, max_steps=1, max_seconds=0)
    assert loop.clock.max_seconds is None and not loop.clock.would_pass(1e9) and not loop.clock.passed()
    with pytest.raises(RuntimeError, match="before the loop ended"):
        _ = loop.ended_by

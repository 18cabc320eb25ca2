"""Step counts kept as the elements of one tensor per bucket (optarena.optim.step_counts): one
operation advances them, and the state keeps torch.optim's form through saving and loading."""

from __future__ import annotations

import io

import pytest
import torch

import optarena
from optarena.optim import step_counts


def model(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).requires_grad_() for shape in [(4, 3), (5,), (2, 2)]]


def run(optimizer, params, steps, start=0):
    for step in range(start, start + steps):
        for i, p in enumerate(params):
            p.grad = torch.cos(p.detach() + 0.3 * step + i)
        optimizer.step()


@pytest.mark.parametrize("fused", [False, True])
def test_counts_are_one_tensor_and_advance_together(fused):
    params = model()
    optimizer = optarena.create("adamw", params, fused=fused)
    run(optimizer, params, 3)
    steps = [optimizer.state[p]["step"] for p in params]
    base = step_counts.counts_of(steps)
    assert base is not None and base.tolist() == [3.0, 3.0, 3.0]
    assert all(s.dim() == 0 and s.dtype == torch.float32 for s in steps)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "nadam"])
def test_saved_and_loaded_counts_continue_and_match_an_unbroken_run(name):
    """A loaded state dict's counts are separate tensors; the next step gathers them again, and
    the run goes on exactly as one that never stopped."""
    unbroken_params, resumed_params = model(), model()
    unbroken = optarena.create(name, unbroken_params, fused=True)
    first = optarena.create(name, resumed_params, fused=True)
    run(unbroken, unbroken_params, 6)
    run(first, resumed_params, 3)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = optarena.create(name, resumed_params, fused=True)
    resumed.load_state_dict(torch.load(buffer))
    assert step_counts.counts_of([resumed.state[p]["step"] for p in resumed_params]) is None
    run(resumed, resumed_params, 3, start=3)
    steps = [resumed.state[p]["step"] for p in resumed_params]
    assert step_counts.counts_of(steps) is not None
    assert [s.item() for s in steps] == [6.0, 6.0, 6.0]
    assert all(torch.equal(a, b) for a, b in zip(unbroken_params, resumed_params))


def test_counts_of_differing_dtypes_advance_one_by_one():
    states = [{"step": torch.tensor(2.0)}, {"step": torch.tensor(5.0, dtype=torch.float64)}, {}]
    steps = step_counts.advance(states)
    assert [s.item() for s in steps] == [3.0, 6.0, 1.0]
    assert step_counts.counts_of(steps) is None
    assert steps[1].dtype == torch.float64


def test_gathered_counts_keep_their_values_and_the_new_ones_start_at_one():
    states = [{"step": torch.tensor(7.0)}, {}, {"step": torch.tensor(2.0)}]
    steps = step_counts.advance(states)
    assert [s.item() for s in steps] == [8.0, 1.0, 3.0]
    assert [state["step"] for state in states] == steps
    assert step_counts.counts_of(steps) is not None


def test_counts_that_are_not_exactly_one_tensors_elements_are_not_taken_for_it():
    base = torch.zeros(3)
    views = list(base.unbind())
    assert step_counts.counts_of(views) is base
    assert step_counts.counts_of(views[:2]) is None  # a third element would be advanced too
    assert step_counts.counts_of([views[0], views[0], views[2]]) is None  # one element twice
    assert step_counts.counts_of([views[0], None, views[2]]) is None
    assert step_counts.counts_of([]) is None
    step_counts.increment(views[:2])
    assert base.tolist() == [1.0, 1.0, 0.0]

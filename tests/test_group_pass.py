"""Prodigy's and D-Adaptation's group pass on the fused path (optarena.optim.group_pass): the
estimate's per-tensor sums compiled, agreeing with the eager pass, without temporaries."""

from __future__ import annotations

import warnings

import pytest
import torch

import optarena
from optarena.bench.memory import peak_extra_bytes
from optarena.optim import chunks

NAMES = ["prodigy", "dadapt_adam"]
PASS_STATE = {"prodigy": ("s", "p0"), "dadapt_adam": ("s", "exp_avg_sq")}
"""The state each pass reads and writes, as its chunk plans are keyed."""
SHAPES = [(6, 4), (5,), (2, 3, 2), (1,), (3, 7)]
"""Several shapes, and a one-element tensor, whose sums the eager code takes inside a fused group."""


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 2)


def two_groups(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(shape, generator=g, dtype=dtype).requires_grad_() for shape in SHAPES]
    groups = [
        {"params": params[:3]},
        {"params": params[3:], "weight_decay": 0.1, "decoupled_weight_decay": False, "maximize": True, "lr": 0.5},
    ]
    return params, groups


def set_grads(params, step):
    for i, p in enumerate(params):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def relative(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", NAMES)
def test_fused_group_pass_agrees_with_eager_over_two_groups(name):
    """Each group has its own estimate (one with coupled decay and maximize); the compiled sums
    are added in another order than the eager ones, so agreement is to rounding, not bitwise."""
    fused_params, fused_groups = two_groups(torch.float64)
    eager_params, eager_groups = two_groups(torch.float64)
    fused = optarena.create(name, fused_groups, fused=True)
    eager = optarena.create(name, eager_groups, fused=False)
    for step in range(12):
        set_grads(fused_params, step)
        set_grads(eager_params, step)
        fused.step()
        eager.step()
    assert any(key[1] == PASS_STATE[name] for key in fused._fused_plans)  # the compiled pass ran
    for ours, theirs in zip(fused_params, eager_params):
        assert relative(ours, theirs) <= 1e-12
        assert relative(fused.state[ours]["s"], eager.state[theirs]["s"]) <= 1e-12
    for ours, theirs in zip(fused.param_groups, eager.param_groups):
        assert ours["k"] == theirs["k"] == 12
        assert ours["d"] == pytest.approx(theirs["d"], rel=1e-12)
    assert fused.param_groups[0]["d"] != fused.param_groups[1]["d"]


@pytest.mark.parametrize("name", NAMES)
def test_fused_step_holds_no_parameter_sized_temporary(name):
    """The eager group pass holds temporaries as large as a parameter (the displacement, the
    denominators, ``|s|``); the compiled one updates ``s`` in place and keeps only the sums."""
    size = 1 << 16  # float64, as above: the same compiled graphs

    def peak(fused):
        params = [torch.randn(shape, dtype=torch.float64).requires_grad_() for shape in [(size,), (256, 3)]]
        optimizer = optarena.create(name, params, fused=fused)
        for step in range(3):
            set_grads(params, step)
            optimizer.step()
        return peak_extra_bytes(optimizer.step)

    assert peak(False) >= 8 * size
    assert peak(True) < size


def test_a_failed_group_pass_compilation_falls_back_to_the_eager_sums(broken_compiler):
    fused_params, fused_groups = two_groups(torch.float64)
    eager_params, eager_groups = two_groups(torch.float64)
    fused = optarena.Prodigy(fused_groups, fused=True)
    eager = optarena.Prodigy(eager_groups, fused=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(4):
            set_grads(fused_params, step)
            set_grads(eager_params, step)
            fused.step()
            eager.step()
    assert any("compiling a group pass failed" in str(w.message) for w in caught)
    assert all(torch.equal(a, b) for a, b in zip(fused_params, eager_params))
    assert [g["d"] for g in fused.param_groups] == [g["d"] for g in eager.param_groups]

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


def dadapt_model(mixed, seed=0):
    """Float64 tensors of several shapes and one more tensor, float32 when ``mixed`` (two
    buckets in one group, whose sums the estimate adds up)."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_() for shape in SHAPES]
    last = torch.randn(4, 5, generator=g, dtype=torch.float64)
    return [*params, (last.float() if mixed else last).requires_grad_()]


def dadapt_state(optimizer, params):
    return [optimizer.state[p][key].clone() for p in params for key in ("s", "exp_avg", "exp_avg_sq")]


@pytest.mark.parametrize(
    "decay, decoupled, mixed", [(0.05, True, True), (0.05, False, True), (0.0, False, True), (0.05, True, False)]
)
def test_dadapt_one_pass_step_agrees_with_eager(decay, decoupled, mixed):
    """After the first moving step the fused path steps each tensor in the group pass itself
    (updating m, v, s and the parameter) and updates d afterwards. Step 0 has zero gradients:
    without coupled decay the package moves nothing and keeps d (coupled decay is a gradient of
    its own); step 4 has lr 0: nothing changes. With a float32 bucket the estimate takes its
    rounding (1e-8 of d), which every state of the float64 tensors then carries."""
    config = {"weight_decay": decay, "decoupled_weight_decay": decoupled}
    frozen = decay == 0 or decoupled  # the zero gradients of step 0 leave sum |s| = 0
    fused_params, eager_params = dadapt_model(mixed), dadapt_model(mixed)
    fused = optarena.create("dadapt_adam", fused_params, fused=True, **config)
    eager = optarena.create("dadapt_adam", eager_params, fused=False, **config)
    for step in range(9):
        lr = 0.0 if step == 4 else 1.0
        for optimizer, params in ((fused, fused_params), (eager, eager_params)):
            optimizer.param_groups[0]["lr"] = lr
            set_grads(params, step)
            if step == 0:
                for p in params:
                    p.grad.zero_()
            before = [p.detach().clone() for p in params]
            state = dadapt_state(optimizer, params) if step else []
            optimizer.step()
            if step == 4 or (step == 0 and frozen):
                assert all(torch.equal(a, p) for a, p in zip(before, params))
            if step == 4:
                assert all(torch.equal(a, b) for a, b in zip(state, dadapt_state(optimizer, params)))
        assert fused.param_groups[0].get("k", 0) == eager.param_groups[0].get("k", 0)
    assert any(key[1] == ("s", "exp_avg_sq", "exp_avg") for key in fused._fused_plans)  # the one-pass step ran
    for ours, theirs in zip(fused_params, eager_params):
        tolerance = 1e-5 if mixed else 1e-12
        assert relative(ours, theirs) <= tolerance
        for key in ("s", "exp_avg", "exp_avg_sq"):
            assert relative(fused.state[ours][key], eager.state[theirs][key]) <= tolerance
    ours, theirs = fused.param_groups[0], eager.param_groups[0]
    assert ours["k"] == (7 if frozen else 8)
    assert ours["d"] == pytest.approx(theirs["d"], rel=1e-6 if mixed else 1e-12)
    assert ours["d"] > ours["d0"]


def test_dadapt_one_pass_only_for_its_own_chain():
    from optarena.transforms import AddDecayedWeights, ScaleByDAdaptAdam, ScaleByLearningRate
    from optarena.transforms.d_adaptation import dadapt_chain

    assert dadapt_chain(optarena.DAdaptAdam.chain())
    assert not dadapt_chain([ScaleByDAdaptAdam()])
    assert not dadapt_chain([AddDecayedWeights(), ScaleByDAdaptAdam()])
    assert not dadapt_chain([*optarena.DAdaptAdam.chain(), ScaleByLearningRate()])


def test_dadapt_norms_after_a_failed_norm_compilation_come_from_the_eager_norm(monkeypatch):
    """The one-pass step has written ``s`` and the parameters before ``sum |s|`` is taken; when
    only that norm's compilation fails, the step is not lost: the norm is taken eagerly and the
    run still agrees with the eager optimizer."""
    from optarena.optim import compiled, toolchain

    real = compiled.compiled_for

    def norms_fail(key, *args, **kwargs):
        if key[0] == "state l1 norms":

            def fail(*args):
                raise RuntimeError("no compiler for norms today")

            return fail
        return real(key, *args, **kwargs)

    monkeypatch.setattr(compiled, "compiled_for", norms_fail)
    monkeypatch.setattr(compiled, "_broken", {})
    monkeypatch.setattr(toolchain, "_warned", set())
    fused_params, eager_params = dadapt_model(False), dadapt_model(False)
    fused = optarena.create("dadapt_adam", fused_params, fused=True)
    eager = optarena.create("dadapt_adam", eager_params, fused=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(5):
            for params in (fused_params, eager_params):
                set_grads(params, step)
            fused.step()
            eager.step()
    assert any("the L1 norms of a group pass" in str(w.message) for w in caught)
    assert any(key[1] == ("s", "exp_avg_sq", "exp_avg") for key in fused._fused_plans)  # the one-pass step ran
    for ours, theirs in zip(fused_params, eager_params):
        assert relative(ours, theirs) <= 1e-12
    assert fused.param_groups[0]["d"] == pytest.approx(eager.param_groups[0]["d"], rel=1e-12)

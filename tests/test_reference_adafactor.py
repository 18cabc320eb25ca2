"""Adafactor against Hugging Face Transformers (stored trajectories) and torch.optim.Adafactor.

tests/fixtures/adafactor_transformers.pt holds ``transformers.optimization.Adafactor``
trajectories in float64 (made by tools/make_adafactor_fixtures.py in an environment with
Transformers). Each configuration must match at 1e-10 relative over 100 steps, in the
parameters and in the displacement from the start (small when the relative step is small).
torch.optim.Adafactor implements the same algorithm where the two coincide (relative step,
parameter scaling, no first moment, no weight decay) and is compared directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import optarena
from optarena.transforms import ClipByBlockRms, ScaleByFactoredRms, ScaleByRelativeStep

FIXTURE = Path(__file__).parent / "fixtures" / "adafactor_transformers.pt"
GRADIENT = "sin(1.3 * p + 0.7 * step + i) + 0.1 * p; None for tensor 2 on every third step"
SHAPES = [(6, 4), (2, 3, 4), (5,), ()]


@pytest.fixture(scope="module")
def fixture():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def set_gradients(params, step):
    for i, p in enumerate(params):
        if i == 2 and step % 3 == 0:
            p.grad = None
        else:
            p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def unflatten(flat: torch.Tensor) -> list[torch.Tensor]:
    out, start = [], 0
    for shape in SHAPES:
        size = int(torch.Size(shape).numel())
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def test_fixture_was_made_with_these_gradients(fixture):
    assert fixture["gradient"] == GRADIENT
    assert [tuple(t.shape) for t in fixture["initial"]] == SHAPES
    assert fixture["steps"] == 100 and len(fixture["cases"]) >= 8


CASE_NAMES = [
    "defaults",
    "beta1",
    "weight_decay",
    "fixed_lr",
    "fixed_lr_unscaled_momentum_decay",
    "warmup_init",
    "unscaled",
    "clip_decay_eps",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_matches_transformers_over_100_steps(fixture, name):
    case = fixture["cases"][name]
    start = torch.cat([t.reshape(-1) for t in fixture["initial"]])
    params = [t.clone().requires_grad_() for t in fixture["initial"]]
    opt = optarena.Adafactor(params, **case["config"])
    every = fixture["every"]
    for step in range(fixture["steps"]):
        set_gradients(params, step)
        opt.step()
        if (step + 1) % every == 0:
            ours = torch.cat([p.detach().reshape(-1) for p in params])
            theirs = case["params"][(step + 1) // every - 1]
            assert relative_error(ours, theirs) <= 1e-10, step
            assert relative_error(ours - start, theirs - start) <= 1e-10, step
    for p, saved in zip(params, case["state"]):
        state = opt.state[p]
        assert set(saved) == set(state) - {"step"}
        for key, value in saved.items():
            assert relative_error(state[key], value) <= 1e-10, key


TORCH_CONFIGS = [
    ({}, {}),
    ({"clip_threshold": 2.0, "decay_rate": -0.6}, {"d": 2.0, "beta2_decay": -0.6}),
    ({"maximize": True, "eps": (1e-30, 1e-2)}, {"maximize": True, "eps": (None, 1e-2)}),
]


@pytest.mark.parametrize("ours_config,torch_config", TORCH_CONFIGS, ids=range(len(TORCH_CONFIGS)))
def test_matches_torch_adafactor_where_the_algorithms_coincide(fixture, ours_config, torch_config):
    ours = [t.clone().requires_grad_() for t in fixture["initial"]]
    theirs = [t.clone().requires_grad_() for t in fixture["initial"]]
    opt = optarena.Adafactor(ours, **ours_config)
    ref = torch.optim.Adafactor(theirs, lr=1e-2, **torch_config)
    for step in range(100):
        set_gradients(ours, step)
        set_gradients(theirs, step)
        opt.step()
        ref.step()
    for a, b, start in zip(ours, theirs, fixture["initial"]):
        assert relative_error(a, b) <= 1e-10
        assert relative_error(a - start, b - start) <= 1e-10


def test_state_of_an_m_by_n_matrix_is_m_plus_n_numbers():
    weight = torch.randn(30, 7, requires_grad=True)
    bias = torch.randn(7, requires_grad=True)
    opt = optarena.Adafactor([weight, bias])
    weight.grad, bias.grad = torch.randn(30, 7), torch.randn(7)
    opt.step()
    numbers = {k: v.numel() for k, v in opt.state[weight].items() if k != "step"}
    assert numbers == {"exp_avg_sq_row": 30, "exp_avg_sq_col": 7}
    assert {k: v.numel() for k, v in opt.state[bias].items() if k != "step"} == {"exp_avg_sq": 7}
    batched = torch.randn(3, 5, 4, requires_grad=True)
    opt = optarena.Adafactor([batched])
    batched.grad = torch.randn(3, 5, 4)
    opt.step()
    assert opt.state[batched]["exp_avg_sq_row"].shape == (3, 5)
    assert opt.state[batched]["exp_avg_sq_col"].shape == (3, 4)


def test_relative_step_keeps_no_learning_rate_in_the_groups():
    opt = optarena.Adafactor([torch.zeros(2, requires_grad=True)])
    assert opt.param_groups[0]["lr"] is None and opt.param_groups[0]["relative_step"] is True


def test_complex_parameters_are_refused():
    with pytest.raises(ValueError, match="Adafactor does not support complex parameters"):
        optarena.Adafactor([torch.zeros(3, 2, dtype=torch.complex128, requires_grad=True)])


def test_a_chain_of_its_transforms_buckets_factored_and_unfactored_apart():
    def params():
        return [
            torch.ones(3, 2, requires_grad=True),
            torch.ones(2, requires_grad=True),
            torch.ones(4, 1, requires_grad=True),
        ]

    ours, theirs = params(), params()
    opt = optarena.Chain(ours, [ScaleByFactoredRms(), ClipByBlockRms(), ScaleByRelativeStep()])
    ref = optarena.Adafactor(theirs, foreach=False)
    for step in range(5):
        set_gradients(ours, step)
        set_gradients(theirs, step)
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_the_factored_update_carries_its_own_rms_on_both_backends():
    """ClipByBlockRms takes the RMS that ScaleByFactoredRms computed from its row sums: it must be
    the RMS of the update that transform returns."""
    from optarena.transforms.base import Kernel, Prepared
    from optarena.transforms.ops import FOREACH, LOOP

    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(shape, generator=g) for shape in [(6, 4), (70, 5), (2, 3, 4)]]
    rows = [torch.rand(x.shape[:-1], generator=g) + 0.1 for x in grads]
    cols = [torch.rand(x.shape[:-2] + x.shape[-1:], generator=g) + 0.1 for x in grads]
    root_rows = [float(r.numel()) ** 0.5 for r in rows]
    scalars = {"beta2": 0.9, "one_minus_beta2": 0.1, "eps1": 1e-30, "root_rows": root_rows}
    prepared = Prepared(scalars, {"factored": True})
    for ops in (FOREACH, LOOP):
        states = {"exp_avg_sq_row": [r.clone() for r in rows], "exp_avg_sq_col": [c.clone() for c in cols]}
        kernel = Kernel([torch.zeros_like(x) for x in grads], states, [prepared])
        out = ScaleByFactoredRms().apply(ops, grads, kernel)
        expected = [x.square().mean().sqrt() for x in out]
        torch.testing.assert_close(out.rms, expected, rtol=1e-12, atol=0)


def test_a_bucket_without_matrices_steps_flattened_in_the_compiled_path():
    """Only the factored moments use shapes: the bucket of vectors compiles flattened (larger
    chunks, fewer calls) and steps as the eager path does; the bucket of matrices keeps shapes."""
    shapes = [(5,), (7,), (3,), (9,), (4,), (6, 4), (3, 5)]
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=g) for s in shapes]
    fused = [torch.nn.Parameter(x.clone()) for x in start]
    eager = [torch.nn.Parameter(x.clone()) for x in start]
    opt_fused = optarena.Adafactor(fused, fused=True)
    opt_eager = optarena.Adafactor(eager, fused=False)
    buckets = opt_fused._plans(opt_fused.param_groups[0], fused, ahead=True)
    assert sorted((len(b.params), b.flat) for b, _ in buckets) == [(2, False), (5, True)]
    for step in range(4):
        for a, b in zip(fused, eager):
            a.grad = torch.sin(1.3 * a.detach() + 0.7 * step) + 0.1 * a.detach()
            b.grad = torch.sin(1.3 * b.detach() + 0.7 * step) + 0.1 * b.detach()
        opt_fused.step()
        opt_eager.step()
    for a, b in zip(fused, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)

"""The layer-wise trust-ratio transforms against per-tensor formulas, on both list backends."""

from __future__ import annotations

import pytest
import torch

import optarena
from optarena.optim.execution import advance_steps, prepare_chain, run_chain, split_chain
from optarena.transforms import ScaleByLars, ScaleByLearningRate, ScaleByTrustRatio
from optarena.transforms.base import Kernel, StepContext
from optarena.transforms.ops import FOREACH, LOOP

BACKENDS = pytest.mark.parametrize("ops", [FOREACH, LOOP], ids=["foreach", "loop"])


def tensors(seed=0):
    """Tensors of several shapes, one all zeros and one empty."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(3, 2, generator=g, dtype=torch.float64) * 4.0,
        torch.zeros(4, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64) * 30.0,
        torch.randn((), generator=g, dtype=torch.float64),
        torch.zeros(0, 2, dtype=torch.float64),
    ]


def grads_like(params, seed=1):
    g = torch.Generator().manual_seed(seed)
    grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    grads[3] = torch.zeros_like(params[3])  # a zero gradient
    return grads


def one_step(ops, transforms, group, params, grads):
    """The chain's step over ``params`` with the given backend; returns the new parameters."""
    params = [p.clone() for p in params]
    states = [{} for _ in params]
    body, fold = split_chain(transforms)
    ctx = StepContext(group, params, states, advance_steps(states, False))
    prepared = prepare_chain(transforms, ctx)
    run_chain(ops, body, fold, Kernel(ctx.params, {}, prepared), [g.clone() for g in grads], False)
    return params


def lamb_ratio(p, u, norm_range=None, max_ratio=None):
    p_norm = p.norm()
    if norm_range is not None:
        p_norm = p_norm.clamp(*norm_range)
    u_norm = u.norm()
    ratio = 1.0 if p_norm == 0 or u_norm == 0 else (p_norm / u_norm).item()
    return ratio if max_ratio is None else min(ratio, max_ratio)


@BACKENDS
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"param_norm_range": (0.0, 10.0)},
        {"param_norm_range": (1.0, 2.0), "max_trust_ratio": 3.0},
        {"max_trust_ratio": 0.5},
    ],
)
def test_trust_ratio_matches_the_per_tensor_formula(ops, options):
    params, lr = tensors(), 0.1
    grads = grads_like(params)
    stepped = one_step(ops, [ScaleByTrustRatio(**options), ScaleByLearningRate()], {"lr": lr}, params, grads)
    for p, g, new in zip(params, grads, stepped):
        expected = p - lr * lamb_ratio(p, g, options.get("param_norm_range"), options.get("max_trust_ratio")) * g
        torch.testing.assert_close(new, expected, rtol=1e-14, atol=0)


@BACKENDS
def test_trust_ratio_is_one_where_a_norm_is_zero(ops):
    params = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
    grads = [torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
    stepped = one_step(ops, [ScaleByTrustRatio(), ScaleByLearningRate()], {"lr": 0.5}, params, grads)
    torch.testing.assert_close(stepped[0], torch.full((3,), -0.5, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(stepped[1], params[1], rtol=0, atol=0)


@BACKENDS
def test_layer_adaptation_off_leaves_the_update_alone(ops):
    params = tensors()
    grads = grads_like(params)
    group = {"lr": 0.1, "layer_adaptation": False}
    for transform in (ScaleByTrustRatio(param_norm_range=(0, 10)), ScaleByLars()):
        stepped = one_step(ops, [transform, ScaleByLearningRate()], {**group, "weight_decay": 0.0}, params, grads)
        for p, g, new in zip(params, grads, stepped):
            torch.testing.assert_close(new, p - 0.1 * g, rtol=1e-15, atol=0)


@BACKENDS
@pytest.mark.parametrize("decay,eta,eps", [(0.0, 1e-3, 0.0), (0.1, 0.02, 0.0), (0.05, 1e-3, 1e-3)])
def test_lars_local_rate_matches_the_paper_formula(ops, decay, eta, eps):
    params, lr = tensors(), 2.0
    grads = grads_like(params)
    group = {"lr": lr, "weight_decay": decay, "trust_coefficient": eta, "eps": eps}
    stepped = one_step(ops, [ScaleByLars(), ScaleByLearningRate()], group, params, grads)
    for p, g, new in zip(params, grads, stepped):
        w, d = p.norm(), g.norm()
        local = 1.0 if w == 0 or d == 0 else eta * w / (d + decay * w + eps)
        torch.testing.assert_close(new, p - lr * local * (g + decay * p), rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"param_norm_range": (2.0, 1.0)}, "param_norm_range"),
        ({"param_norm_range": (-1.0, 1.0)}, "0 <= low <= high"),
        ({"param_norm_range": 3.0}, "pair"),
        ({"max_trust_ratio": 0.0}, "max_trust_ratio"),
    ],
)
def test_bad_construction_options_are_named(options, fragment):
    with pytest.raises(ValueError, match=fragment):
        ScaleByTrustRatio(**options)


def test_description_shows_the_construction_options():
    assert ScaleByTrustRatio().describe() == "scale_by_trust_ratio"
    shown = ScaleByTrustRatio(param_norm_range=(0, 10), max_trust_ratio=5).describe()
    assert shown == "scale_by_trust_ratio(param_norm_range=(0, 10), max_trust_ratio=5)"


def trajectories_agree(make_ours, make_theirs, steps=60):
    """Largest relative difference after ``steps`` steps on the same gradients (float64)."""
    g = torch.Generator().manual_seed(5)
    ours = [
        torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(),
        torch.zeros(3, dtype=torch.float64, requires_grad=True),
    ]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    a, b = make_ours(ours), make_theirs(theirs)
    for step in range(steps):
        for x, y in zip(ours, theirs):
            x.grad = torch.sin(1.1 * x.detach() + step) + 0.2
            y.grad = torch.sin(1.1 * y.detach() + step) + 0.2
        a.step()
        b.step()
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(ours, theirs))


def test_lamb_without_layer_adaptation_is_adamw():
    config = {"lr": 0.01, "eps": 1e-8, "weight_decay": 0.1}
    error = trajectories_agree(
        lambda p: optarena.LAMB(p, layer_adaptation=False, **config), lambda p: torch.optim.AdamW(p, **config)
    )
    assert error <= 1e-12


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_without_layer_adaptation_is_sgd(nesterov):
    config = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "nesterov": nesterov}
    error = trajectories_agree(
        lambda p: optarena.LARS(p, layer_adaptation=False, **config), lambda p: torch.optim.SGD(p, **config)
    )
    assert error <= 1e-12


def test_excluding_a_param_group_from_adaptation_only_changes_that_group():
    """Biases and norm layers in a group of their own: plain momentum SGD there, LARS elsewhere."""
    model = torch.nn.Linear(3, 2).double()
    twin = torch.nn.Linear(3, 2).double()
    twin.load_state_dict(model.state_dict())
    lars = optarena.LARS(
        [{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0, "layer_adaptation": False}],
        lr=0.5,
        weight_decay=0.01,
    )
    weights = optarena.LARS([twin.weight], lr=0.5, weight_decay=0.01)
    biases = torch.optim.SGD([twin.bias], lr=0.5, momentum=0.9)
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        for net in (model, twin):
            net.zero_grad()
            net(x).pow(2).mean().backward()
        for opt in (lars, weights, biases):
            opt.step()
    torch.testing.assert_close(model.weight, twin.weight, rtol=1e-13, atol=0)
    torch.testing.assert_close(model.bias, twin.bias, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", ["lamb", "lars"])
def test_complex_parameters_are_refused(name):
    with pytest.raises(ValueError, match="does not support complex parameters"):
        optarena.create(name, [torch.zeros(3, dtype=torch.complex128, requires_grad=True)], lr=0.1)


def test_lars_requires_lr():
    with pytest.raises(TypeError, match="required positional argument: 'lr'"):
        optarena.LARS([torch.zeros(2, requires_grad=True)])

"""Ranger against the authors' package, and RangerLARS against the over9000 code's reading of it.

The table (tests/optimizer_table.py) runs both through the generic suite and compares them
with their references over 100 steps; these tests check what the table cannot.
"""

from __future__ import annotations

import pytest
import torch
from references import DefinitionRangerLARS, PackageRanger

import optarena

SHAPES = [(6, 4), (3, 2, 2, 2), (5,), (2, 3, 2)]


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def params(seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(s, generator=g)).requires_grad_() for s in SHAPES]


def grads(ps, step):
    for i, p in enumerate(ps):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach() + 0.05 * i


def run(opt, ps, steps):
    for step in range(steps):
        grads(ps, step)
        opt.step()
    return ps


def worst(a, b):
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b))


@pytest.mark.parametrize("conv_only", [False, True])
def test_ranger_centralises_conv_kernels_as_the_2020_ranger(conv_only):
    ours = params()
    theirs = params()
    run(optarena.Ranger(ours, lr=0.01, gc_conv_only=conv_only), ours, 40)
    run(PackageRanger(theirs, lr=0.01, gc_conv_only=conv_only), theirs, 40)
    assert worst(ours, theirs) <= 1e-10


def test_the_package_alone_is_ranger_without_centralisation():
    """Fed raw gradients, the package differs from Ranger and equals Ranger(use_gc=False)."""
    with_gc, without_gc, package = params(), params(), params()
    run(optarena.Ranger(with_gc, lr=0.01), with_gc, 40)
    run(optarena.Ranger(without_gc, lr=0.01, use_gc=False), without_gc, 40)
    run(PackageRanger(package, lr=0.01, use_gc=False), package, 40)
    assert worst(without_gc, package) <= 1e-10
    assert worst(with_gc, package) > 1e-4


def test_ranger_weight_decay_is_decoupled_and_scaled_by_the_learning_rate_only():
    """With zero gradients the RAdam step is zero, so the decay alone moves the weights."""
    ps = params()
    opt = optarena.Ranger(ps, lr=0.1, weight_decay=0.2, k=100)
    start = [p.detach().clone() for p in ps]
    for _ in range(3):
        for p in ps:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p, p0 in zip(ps, start):
        torch.testing.assert_close(p.detach(), p0 * (1 - 0.1 * 0.2) ** 3, rtol=1e-14, atol=0)


def test_over9000_is_an_alias_of_rangerlars():
    entry = optarena.registry.lookup("over9000")
    assert entry.cls is optarena.RangerLARS and entry.defaults() == optarena.registry.lookup("rangerlars").defaults()


def test_ralamb_reading_is_ranger_without_centralisation_while_norms_are_below_10():
    """Dividing by ||theta|| (the over9000 code) makes the ratio 1 whenever ||theta|| <= 10."""
    config = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "k": 6, "alpha": 0.5}
    ralamb, ranger, ours = params(), params(), params()
    run(DefinitionRangerLARS(ralamb, ratio_denominator="param", **config), ralamb, 60)
    run(optarena.Ranger(ranger, use_gc=False, **config), ranger, 60)
    run(optarena.RangerLARS(ours, **config), ours, 60)
    assert max(p.norm().item() for p in ralamb) < 10
    assert worst(ralamb, ranger) <= 1e-12
    assert worst(ours, ranger) > 1e-3  # the trust ratio of the definition does change the steps


def test_rangerlars_clamps_the_parameter_norm_at_10():
    big = params(scale=20.0)  # every norm above 10
    twin = [p.detach().clone().requires_grad_() for p in big]
    run(optarena.RangerLARS(big, lr=0.01), big, 12)
    run(DefinitionRangerLARS(twin, lr=0.01), twin, 12)
    assert min(p.norm().item() for p in twin) > 10
    assert worst(big, twin) <= 1e-12


def test_the_trust_ratio_cap_bounds_each_step():
    ps = params()
    opt = optarena.RangerLARS(ps, lr=0.1, max_trust_ratio=0.01, k=1000)
    before = [p.detach().clone() for p in ps]
    grads(ps, 0)
    opt.step()
    # the first RAdam step is m_hat = g, so each tensor moves by at most lr * cap * ||g||
    for p, p0 in zip(ps, before):
        assert (p.detach() - p0).norm() <= 0.1 * 0.01 * p.grad.norm() * (1 + 1e-12)


def loop_step(opt, params):
    """One step of ``opt``'s chain on the per-tensor loop backend, with every prepared number a
    0-d tensor: the form the fused (compiled) path traces."""
    from optarena.optim.execution import _StateViews, advance_steps, prepare_chain, run_chain, split_chain
    from optarena.transforms.base import Kernel, Prepared, StepContext
    from optarena.transforms.ops import LOOP

    group = opt.param_groups[0]
    bucket = [p for p in params if p.grad is not None]
    states = [opt.state[p] for p in bucket]
    body, fold_lr = split_chain(opt.transforms)
    ctx = StepContext(group, bucket, states, advance_steps(states, opt.uses_step))
    tensors = []
    for prepared in prepare_chain(opt.transforms, ctx):
        scalars = {
            name: [torch.tensor(float(v)) for v in (value if isinstance(value, list) else [value] * len(bucket))]
            for name, value in prepared.scalars.items()
        }
        tensors.append(Prepared(scalars, dict(prepared.static)))
    run_chain(LOOP, body, fold_lr, Kernel(ctx.params, _StateViews(ctx), tensors), [p.grad for p in bucket], False)


@pytest.mark.parametrize(
    "name,config",
    [
        ("ranger", {"lr": 0.01, "k": 3, "weight_decay": 0.1}),
        ("ranger", {"lr": 0.01, "k": 2, "gc_conv_only": True}),
        ("rangerlars", {"lr": 0.01, "k": 3, "max_trust_ratio": 1.5, "weight_decay": 0.1}),
    ],
)
def test_chains_give_the_same_numbers_on_the_loop_backend_with_tensor_scalars(name, config):
    eager, loop = params(), params()
    opt_eager = optarena.create(name, eager, **config)
    opt_loop = optarena.create(name, loop, **config)
    for step in range(14):
        grads(eager, step)
        grads(loop, step)
        if step % 4 == 1:  # one parameter misses steps: its synchronisations fall elsewhere ("some" mode)
            eager[2].grad = None
            loop[2].grad = None
        opt_eager.step()
        with torch.no_grad():
            loop_step(opt_loop, loop)
    for a, b in zip(eager, loop):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)

"""Sophia's Hessian estimate, refreshed through ``step(hessian_closure=...)``.

Gauss-Newton-Bartlett against the authors' SophiaG (sophia-opt), which leaves the estimate to
its caller: the test hands it the same sampled gradient through ``update_hessian()`` right
after the step, at the steps where optarena refreshes (1, k+1, 2k+1, ...). Hutchinson's
estimator against the exact diagonal of a Hessian; against optax.contrib.sophia through stored
fixtures in tests/test_reference_optax_adaptive.py.
"""

from __future__ import annotations

import pytest
import references_adaptive as adaptive
import torch

import optarena
from optarena.optim.sophia import hutchinson

SHAPES = [(6, 4), (5,), (2, 3, 2), ()]


@pytest.fixture(autouse=True)
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).requires_grad_() for shape in SHAPES]


def set_grads(params, step):
    for i, p in enumerate(params):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def sampled_loss(params, step):
    """A stand-in for the mean loss over labels sampled from the model's outputs."""
    return sum((torch.cos(0.9 * p + 0.3 * step + i) * (1 + 0.1 * i)).sum() for i, p in enumerate(params))


@pytest.mark.parametrize(
    "config",
    [
        {"batch_size": 16},
        {"lr": 1e-3, "betas": (0.9, 0.95), "rho": 0.1, "weight_decay": 0.0, "batch_size": 4, "update_period": 3},
        {"lr": 5e-3, "rho": 0.02, "batch_size": 32, "update_period": 1, "maximize": True},
    ],
    ids=["defaults", "settings", "every-step-maximize"],
)
def test_gauss_newton_bartlett_matches_sophia_g_over_100_steps(config):
    ours, theirs = make_params(), make_params()
    opt = optarena.create("sophia", ours, **config)
    ref = adaptive.sophia(theirs, **config)
    period = config.get("update_period", 10)
    calls = []

    def closure_for(step):
        def hessian_closure():
            calls.append(step)
            return sampled_loss(ours, step)

        return hessian_closure

    for step in range(100):
        set_grads(ours, step)
        set_grads(theirs, step)
        due = step % period == 0
        assert opt.refresh_due == due
        if due:  # the reference's estimate at the parameters before the step
            sample = torch.autograd.grad(sampled_loss(theirs, step), theirs)
        opt.step(hessian_closure=closure_for(step))
        ref.step()
        if due:
            ref.load_grads(list(sample))  # (negated under maximize: squared, it is the same)
            ref.inner.update_hessian()
    assert calls == [s for s in range(100) if s % period == 0]
    worst = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(ours, theirs))
    assert worst <= 1e-10
    # the estimate was used: without it the path differs
    plain = make_params()
    other = optarena.create("sophia", plain, **config)
    for step in range(100):
        set_grads(plain, step)
        other.step()
    assert max((a - b).abs().max().item() for a, b in zip(ours, plain)) > 1e-6


def test_hutchinson_is_unbiased_for_the_hessian_diagonal():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(6, 6, generator=g)
    hessian = a @ a.T + torch.eye(6)
    x = torch.randn(6, generator=g).requires_grad_()
    torch.manual_seed(0)
    samples = torch.stack([hutchinson(0.5 * x @ hessian @ x, [x])[0] for _ in range(4000)])
    mean, spread = samples.mean(0), samples.std(0) / 4000**0.5
    assert ((mean - hessian.diagonal()).abs() <= 5 * spread + 1e-12).all()
    assert samples.std(0).max() > 0  # off-diagonal terms make single samples noisy


def test_a_bad_hessian_closure_is_refused_before_anything_changes():
    params = make_params()
    opt = optarena.Sophia(params)
    set_grads(params, 0)
    before = [p.detach().clone() for p in params]
    with pytest.raises(TypeError, match="hessian_closure must return the loss"):
        opt.step(hessian_closure=lambda: 3.0)
    assert all(torch.equal(a, b) for a, b in zip(params, before))
    assert len(opt.state) == 0


def test_the_estimate_is_not_refreshed_for_a_skipped_step():
    params = make_params()
    opt = optarena.Sophia(params, nonfinite="skip", update_period=1)
    set_grads(params, 0)
    params[0].grad[0, 0] = float("nan")
    opt.step(hessian_closure=lambda: sampled_loss(params, 0))
    assert len(opt.state) == 0  # nothing stepped, no estimate was stored
    set_grads(params, 1)
    opt.step(hessian_closure=lambda: sampled_loss(params, 1))
    assert all(opt.state[p]["hessian"].abs().sum() > 0 for p in params)

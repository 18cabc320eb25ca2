"""The Lookahead wrapper around optarena's and torch's optimizers, and its chain transform."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from references import PaperLookahead

import optarena
from optarena.transforms import LookaheadSync, ScaleByAdam, ScaleByLearningRate


def params(seed=0, shapes=((4, 3), (5,), (2, 2, 2))):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]


def clone(ps):
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in ps]


def grads(ps, step):
    for i, p in enumerate(ps):
        p.grad = torch.sin(1.1 * p.detach() + 0.3 * step + i) + 0.1 * p.detach()


def fixed_grads(ps, step):
    """Gradients that do not depend on the parameters (to compare optimizer states)."""
    for i, p in enumerate(ps):
        p.grad = torch.full_like(p, 0.1 * (step % 7) - 0.25 + 0.05 * i)


def run(opt, ps, steps, start=0, make=grads):
    for step in range(start, start + steps):
        make(ps, step)
        opt.step()


@pytest.mark.parametrize(
    "inner,config",
    [
        (
            lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
            {"inner": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        ),
        (lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True), {"inner": "adam", "lr": 0.01, "amsgrad": True}),
    ],
    ids=["torch-sgd", "torch-adam"],
)
def test_wrapping_torch_optimizers_follows_the_paper(inner, config):
    ours, theirs = params(), params()
    opt = optarena.Lookahead(inner(ours), k=4, alpha=0.6)
    ref = PaperLookahead(theirs, k=4, alpha=0.6, **config)
    for step in range(30):
        grads(ours, step)
        grads(theirs, step)
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_is_an_optimizer_whose_param_groups_are_the_inner_list():
    ps = params()
    inner = torch.optim.SGD(ps, lr=0.1, momentum=0.9)
    opt = optarena.Lookahead(inner)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is inner.param_groups
    assert opt.defaults is inner.defaults
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for step in range(4):
        grads(ps, step)
        opt.step()
        scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.025)
    opt.add_param_group({"params": [torch.zeros(3, dtype=torch.float64, requires_grad=True)], "lr": 0.2})
    assert len(inner.param_groups) == 2 and opt.param_groups is inner.param_groups


def test_cosine_schedule_drives_the_inner_learning_rate_exactly_as_without_the_wrapper():
    a, b = params(), params()
    inner = torch.optim.Adam(a, lr=0.1)
    opt = optarena.Lookahead(inner, k=1, alpha=1.0)  # a synchronisation that changes nothing
    plain = torch.optim.Adam(b, lr=0.1)
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10) for o in (opt, plain)]
    for step in range(12):
        grads(a, step)
        grads(b, step)
        opt.step()
        plain.step()
        for s in schedules:
            s.step()
        assert inner.param_groups[0]["lr"] == plain.param_groups[0]["lr"]
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=0)


def test_cyclic_momentum_sees_the_inner_defaults():
    ps = params()
    opt = optarena.Lookahead(torch.optim.SGD(ps, lr=0.1, momentum=0.9))
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10)  # needs 'momentum' in defaults
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)


def test_synchronisation_keeps_the_inner_state():
    ours, plain = params(), params()
    opt = optarena.Lookahead(torch.optim.Adam(ours, lr=0.05), k=3, alpha=0.5)
    adam = torch.optim.Adam(plain, lr=0.05)
    run(opt, ours, 3, make=fixed_grads)  # ends on a synchronisation
    run(adam, plain, 3, make=fixed_grads)
    assert not torch.equal(ours[0], plain[0])  # the parameters were pulled back
    for p, q in zip(ours, plain):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.optimizer.state[p][key], adam.state[q][key]), key


@pytest.mark.parametrize("stop", [3, 5, 7])
def test_state_dict_through_torch_save_continues_bit_identically(stop):
    ours = params()
    opt = optarena.Lookahead(torch.optim.Adam(ours, lr=0.02), k=5, alpha=0.4)
    run(opt, ours, stop)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["lookahead"] == {"k": 5, "alpha": 0.4, "step": stop}

    twins = clone(ours)
    twin = optarena.Lookahead(torch.optim.Adam(twins, lr=0.9), k=2, alpha=0.9)  # restored from the state dict
    twin.load_state_dict(loaded)
    assert (twin.k, twin.alpha, twin.lookahead_step) == (5, 0.4, stop)
    assert twin.param_groups[0]["lr"] == 0.02 and twin.param_groups is twin.optimizer.param_groups
    run(opt, ours, 9, start=stop)
    run(twin, twins, 9, start=stop)
    for a, b in zip(ours, twins):
        assert torch.equal(a, b)


def test_load_state_dict_rejects_an_inner_state_dict_with_a_clear_message():
    ps = params()
    opt = optarena.Lookahead(torch.optim.Adam(ps))
    with pytest.raises(ValueError, match="not a Lookahead state dict.*optimizer.optimizer.load_state_dict"):
        opt.load_state_dict(torch.optim.Adam(clone(ps)).state_dict())


def test_a_skipped_step_does_not_count():
    ours, plain = params(), params()
    opt = optarena.Lookahead(optarena.Adam(ours, lr=0.05, nonfinite="skip"), k=3)
    ref = optarena.Lookahead(optarena.Adam(plain, lr=0.05), k=3)
    for step in range(8):
        grads(ours, step)
        grads(plain, step)
        opt.step()
        ref.step()
        if step == 1:
            ours[1].grad = torch.full_like(ours[1], float("nan"))
            opt.step()  # skipped: no update, no count
    assert opt.lookahead_step == ref.lookahead_step == 8
    for a, b in zip(ours, plain):
        assert torch.equal(a, b)


def test_slow_weights_start_before_the_first_update_even_with_a_closure():
    ours, theirs = params(), params()
    opt = optarena.Lookahead(torch.optim.SGD(ours, lr=0.1), k=2, alpha=0.5)
    ref = PaperLookahead(theirs, inner="sgd", k=2, alpha=0.5, lr=0.1)
    for _ in range(4):

        def closure():
            opt.zero_grad()
            loss = sum((p**2).sum() for p in ours)
            loss.backward()
            return loss

        opt.step(closure)
        ref.inner.zero_grad()
        sum((p**2).sum() for p in theirs).backward()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_frozen_and_unused_parameters_get_no_slow_weights():
    ps = params()
    frozen = torch.ones(3, dtype=torch.float64)  # requires_grad=False
    opt = optarena.Lookahead(torch.optim.SGD([*ps, frozen], lr=0.1), k=2)
    for step in range(4):
        grads(ps[:2], step)
        opt.step()
    assert set(opt.state) == set(ps[:2])
    assert torch.equal(frozen, torch.ones(3, dtype=torch.float64))


def test_deepcopy_and_pickle_keep_wrapper_and_inner_together():
    ps = params()
    opt = optarena.Lookahead(torch.optim.Adam(ps, lr=0.01), k=3)
    run(opt, ps, 2)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        twin_params = twin.param_groups[0]["params"]
        assert twin.param_groups is twin.optimizer.param_groups
        assert set(twin.state) <= set(twin_params) and twin.lookahead_step == 2
        run(twin, twin_params, 3, start=2)
    run(opt, ps, 3, start=2)
    for a, b in zip(ps, twin.param_groups[0]["params"]):
        assert torch.equal(a, b)


def test_wrapper_and_chain_transform_agree_when_every_parameter_has_a_gradient():
    a, b = params(), params()
    wrapped = optarena.Lookahead(optarena.Adam(a, lr=0.03), k=4, alpha=0.3)
    chain = optarena.Chain(b, [ScaleByAdam(), ScaleByLearningRate(), LookaheadSync()], lr=0.03, k=4, alpha=0.3)
    run(wrapped, a, 21)
    run(chain, b, 21)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-15)


def test_chain_transform_counts_each_parameters_own_updates():
    ps = params()
    chain = optarena.Chain(ps, [ScaleByAdam(), ScaleByLearningRate(), LookaheadSync()], lr=0.03, k=3, alpha=0.5)
    for step in range(5):
        grads(ps, step)
        if step in (1, 2):
            ps[1].grad = None  # parameter 1 is updated at steps 0, 3, 4: its third update is the last
        before = ps[1].detach().clone()
        chain.step()
    slow = chain.state[ps[1]]["slow_param"]
    assert torch.equal(ps[1].detach(), slow) and not torch.equal(slow, before)
    assert not torch.equal(ps[0].detach(), chain.state[ps[0]]["slow_param"])  # 5 updates: not synchronised


def test_bad_arguments_are_named():
    ps = params()
    with pytest.raises(TypeError, match="wraps a torch.optim.Optimizer"):
        optarena.Lookahead(ps)
    with pytest.raises(ValueError, match="Lookahead: Invalid k: True"):
        optarena.Lookahead(torch.optim.SGD(ps, lr=0.1), k=True)
    with pytest.raises(ValueError, match="Lookahead: Invalid alpha value: -0.5; allowed range: 0 <= alpha <= 1"):
        optarena.Lookahead(torch.optim.SGD(ps, lr=0.1), alpha=-0.5)
    with pytest.raises(TypeError, match="inner must be a registered optimizer's name"):
        optarena.create("lookahead", ps, inner=torch.optim.SGD)
    with pytest.raises(TypeError, match="Lookahead\\(\\) got an unexpected keyword argument 'kk'. Did you mean 'k'"):
        optarena.create("lookahead", ps, kk=3)
    with pytest.raises(TypeError, match="Did you mean 'momentum'"):
        optarena.create("lookahead", ps, inner="sgd", momentun=0.9)


def test_create_builds_the_named_inner_optimizer():
    opt = optarena.create("lookahead", params(), inner="nesterov", lr=0.1, k=7, alpha=0.25)
    assert isinstance(opt.optimizer, optarena.SGD)
    assert opt.param_groups[0]["nesterov"] is True and opt.param_groups[0]["lr"] == 0.1
    assert (opt.k, opt.alpha) == (7, 0.25)
    entry = optarena.registry.lookup("lookahead")
    assert entry.defaults()["inner"] == "adam" and entry.defaults()["lr"] == 1e-3
    assert isinstance(entry.build(params()).optimizer, optarena.Adam)

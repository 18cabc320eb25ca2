"""A group's step plan kept between steps gives the parameters and state of planning afresh.

Each case steps two copies of one optimizer through the same changes: one keeps its plans
between steps (the default), the other plans every step as before (its ``_step_plans`` is
the planner itself). They must agree exactly, and the first must have reused its plan where
nothing changed, so that the kept path is what was tested.
"""

from __future__ import annotations

import pytest
import torch

import optarena

OPTIMIZERS = [
    ("adam", {"lr": 0.01, "weight_decay": 0.01}),  # torch's fused kernel
    ("sgd", {"lr": 0.01, "momentum": 0.9}),  # torch's kernel, state made at the first step
    ("adagrad", {"lr": 0.05}),
    ("lion", {"lr": 0.001, "fused": False}),  # eager multi-tensor step
]
BY_OPTIMIZER = pytest.mark.parametrize(("name", "settings"), OPTIMIZERS, ids=[n for n, _ in OPTIMIZERS])
SHAPES = [(4, 3), (5,), (2, 3), (3,)]


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).requires_grad_() for shape in SHAPES]


def set_grads(params, step):
    for i, p in enumerate(params):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i)


def twins(name, settings, groups=None):
    """The optimizer keeping its plans, and an identical one planning every step."""
    built = []
    for _ in range(2):
        params = make_params()
        built.append((optarena.create(name, groups(params) if groups else params, **settings), params))
    (kept, kept_params), (fresh, fresh_params) = built
    fresh._step_plans = fresh._plans  # type: ignore[method-assign]  # plan afresh at every step
    return kept, kept_params, fresh, fresh_params


def assert_same(kept, fresh):
    for a, b in zip(kept.param_groups, fresh.param_groups):
        for p, q in zip(a["params"], b["params"]):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
            assert kept.state[p].keys() == fresh.state[q].keys()
            for key, value in kept.state[p].items():
                torch.testing.assert_close(value, fresh.state[q][key], rtol=0, atol=0)


def run(kept, kept_params, fresh, fresh_params, steps, change=None):
    """Step both; ``change(optimizer, params, step)`` runs on each before the step."""
    for step in range(steps):
        for optimizer, params in ((kept, kept_params), (fresh, fresh_params)):
            set_grads(params, step)
            if change is not None:
                change(optimizer, params, step)
            optimizer.step()
    assert_same(kept, fresh)


def plan_of(optimizer, index=0):
    return optimizer._kept_plans.get(id(optimizer.param_groups[index]))


@BY_OPTIMIZER
def test_unchanged_steps_reuse_the_plan(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    run(kept, kept_params, fresh, fresh_params, 2)
    plan = plan_of(kept)
    assert plan is not None
    run(kept, kept_params, fresh, fresh_params, 3)
    assert plan_of(kept) is plan


@BY_OPTIMIZER
def test_a_gradient_missing_for_one_step(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def drop(optimizer, params, step):
        if step == 2:
            params[1].grad = None

    run(kept, kept_params, fresh, fresh_params, 5, drop)
    assert plan_of(kept).facts.same_params(kept_params)  # planned again for all four


@BY_OPTIMIZER
def test_a_scheduler_changing_lr_every_step(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0 / (1 + t)) for o in (kept, fresh)]
    for step in range(5):
        for (optimizer, params), scheduler in zip(((kept, kept_params), (fresh, fresh_params)), schedulers):
            set_grads(params, step)
            optimizer.step()
            scheduler.step()
        if step == 1:
            plan = plan_of(kept)
    assert_same(kept, fresh)
    assert plan_of(kept) is plan  # lr is read at each step, not part of the plan


@BY_OPTIMIZER
def test_a_tensor_lr_changed_in_place(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    for optimizer in (kept, fresh):
        optimizer.param_groups[0]["lr"] = torch.tensor(settings["lr"])

    def halve(optimizer, params, step):
        optimizer.param_groups[0]["lr"].mul_(0.5)

    run(kept, kept_params, fresh, fresh_params, 4, halve)
    plan = plan_of(kept)
    run(kept, kept_params, fresh, fresh_params, 2, halve)
    assert plan_of(kept) is plan


@BY_OPTIMIZER
def test_add_param_group_after_steps(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    run(kept, kept_params, fresh, fresh_params, 2)
    extra = {id(kept): [torch.ones(3, requires_grad=True)], id(fresh): [torch.ones(3, requires_grad=True)]}
    for optimizer in (kept, fresh):
        optimizer.add_param_group({"params": extra[id(optimizer)], "lr": 0.02})

    def grads_for_extra(optimizer, params, step):
        extra[id(optimizer)][0].grad = torch.full((3,), 0.1 * step + 0.3)

    run(kept, kept_params, fresh, fresh_params, 3, grads_for_extra)
    assert plan_of(kept, 1) is not None


@BY_OPTIMIZER
def test_load_state_dict_mid_run(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    run(kept, kept_params, fresh, fresh_params, 3)
    saved = {
        id(o): (o.state_dict(), [p.detach().clone() for p in ps])
        for o, ps in ((kept, kept_params), (fresh, fresh_params))
    }
    run(kept, kept_params, fresh, fresh_params, 2)
    for optimizer, params in ((kept, kept_params), (fresh, fresh_params)):
        state, values = saved[id(optimizer)]
        optimizer.load_state_dict(state)
        with torch.no_grad():
            for p, v in zip(params, values):
                p.copy_(v)
    assert not kept._kept_plans
    run(kept, kept_params, fresh, fresh_params, 3)


@BY_OPTIMIZER
def test_state_cleared_mid_run(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def clear(optimizer, params, step):
        if step == 2:
            optimizer.state.clear()
        if step == 4:
            del optimizer.state[params[0]]

    run(kept, kept_params, fresh, fresh_params, 6, clear)


@BY_OPTIMIZER
def test_a_parameter_replaced_in_its_group(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def replace(optimizer, params, step):
        if step == 2:
            params[2] = torch.zeros(2, 3, requires_grad=True)
            params[2].grad = torch.ones(2, 3)
            optimizer.param_groups[0]["params"][2] = params[2]

    run(kept, kept_params, fresh, fresh_params, 4, replace)


@BY_OPTIMIZER
def test_gradients_that_turn_non_contiguous(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def transpose(optimizer, params, step):
        if step in (2, 3):
            params[0].grad = params[0].grad.t().contiguous().t()  # same values, column-major

    run(kept, kept_params, fresh, fresh_params, 5, transpose)


@BY_OPTIMIZER
def test_gradients_non_contiguous_at_every_step(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def transpose(optimizer, params, step):
        params[0].grad = params[0].grad.t().contiguous().t()  # as channels_last layers give them

    run(kept, kept_params, fresh, fresh_params, 2, transpose)
    plan = plan_of(kept)
    run(kept, kept_params, fresh, fresh_params, 3, transpose)
    assert plan_of(kept) is plan


@BY_OPTIMIZER
def test_settings_changed_between_steps(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)

    def switch(optimizer, params, step):
        group = optimizer.param_groups[0]
        if step == 2:
            group["fused"] = False  # torch's kernel to the eager step, and back
        if step == 4:
            group["fused"] = None
            if name == "adam":
                group["amsgrad"] = True  # a state key the kernel reads appears

    run(kept, kept_params, fresh, fresh_params, 6, switch)


@pytest.mark.parametrize(("name", "settings"), OPTIMIZERS[:3], ids=[n for n, _ in OPTIMIZERS[:3]])
def test_a_state_tensor_replaced_by_a_non_contiguous_one(name, settings):
    kept, kept_params, fresh, fresh_params = twins(name, settings)
    key = {"adam": "exp_avg", "sgd": "momentum_buffer", "adagrad": "sum"}[name]

    def replace(optimizer, params, step):
        state = optimizer.state[params[0]]
        if step == 2:
            state[key] = state[key].t().contiguous().t()  # torch's kernel cannot take it
        if step == 4:
            assert not state[key].is_contiguous()
            state[key] = state[key].contiguous()  # and can again

    run(kept, kept_params, fresh, fresh_params, 6, replace)


def test_the_kept_plan_equals_torch_fused_adam():
    params = make_params()
    reference = [p.detach().clone().requires_grad_() for p in params]
    ours = optarena.Adam(params, lr=0.01)
    theirs = torch.optim.Adam(reference, lr=0.01, fused=True)
    for step in range(6):
        set_grads(params, step)
        set_grads(reference, step)
        if step == 3:
            params[1].grad = reference[1].grad = None
        ours.step()
        theirs.step()
    for p, q in zip(params, reference):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_a_copy_keeps_no_plan_and_steps_alike():
    import copy

    params = make_params()
    optimizer = optarena.Adam(params, lr=0.01)
    set_grads(params, 0)
    optimizer.step()
    assert optimizer._kept_plans
    twin = copy.deepcopy(optimizer)
    assert not twin._kept_plans
    twin_params = twin.param_groups[0]["params"]
    for step in (1, 2):
        set_grads(params, step)
        set_grads(twin_params, step)
        optimizer.step()
        twin.step()
    for p, q in zip(params, twin_params):
        torch.testing.assert_close(p, q, rtol=0, atol=0)

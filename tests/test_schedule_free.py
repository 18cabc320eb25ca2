"""Schedule-Free's train and eval modes: the parameters hold y or x, checkpoints in either mode
resume bit for bit, and a step in eval mode is refused with nothing changed."""

from __future__ import annotations

import copy
import io

import pytest
import references_adaptive as adaptive
import torch

import optarena

NAMES = ["schedule_free_adamw", "schedule_free_sgd"]
CONFIGS = {
    "schedule_free_adamw": {"lr": 0.01, "weight_decay": 0.05, "warmup_steps": 3},
    "schedule_free_sgd": {"lr": 0.05, "weight_decay": 0.05, "warmup_steps": 3},
}
KIND = {"schedule_free_adamw": "adamw", "schedule_free_sgd": "sgd"}


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(),
        torch.randn(5, generator=g, dtype=torch.float64).requires_grad_(),
    ]


def set_grads(params, step):
    for i, p in enumerate(params):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def steps(opt, params, start, count):
    for step in range(start, start + count):
        set_grads(params, step)
        opt.step()


def saved(opt, params) -> tuple[list[torch.Tensor], dict]:
    """The model's and the optimizer's state as torch.save / torch.load(weights_only=True) return them."""
    buffer = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    return loaded["params"], loaded["optim"]


@pytest.mark.parametrize("name", NAMES)
def test_eval_writes_the_packages_x_and_train_writes_y_back(name):
    ours, theirs = make_params(), make_params()
    opt = optarena.create(name, ours, **CONFIGS[name])
    ref = adaptive.schedule_free(KIND[name])(theirs, **CONFIGS[name])
    for step in range(20):
        set_grads(ours, step)
        set_grads(theirs, step)
        opt.step()
        ref.step()
    y = [p.detach().clone() for p in ours]
    beta = 0.9
    z = [opt.state[p]["z"].clone() for p in ours]
    opt.eval()
    ref.inner.eval()
    assert not opt.training and all(g["train_mode"] is False for g in opt.param_groups)
    for a, b, yi, zi in zip(ours, theirs, y, z):
        assert torch.equal(a, torch.lerp(yi, zi, 1 - 1 / beta))  # the package's operation on our values
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)  # and the package's x
        assert not torch.equal(a, yi)
    x = [p.detach().clone() for p in ours]
    opt.eval()  # a second eval changes nothing
    assert all(torch.equal(a, b) for a, b in zip(ours, x))
    opt.train()
    ref.inner.train()
    assert opt.training
    for a, b, xi, yi, zi in zip(ours, theirs, x, y, z):
        assert torch.equal(a, torch.lerp(xi, zi, 1 - beta))
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
        torch.testing.assert_close(a, yi, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_x_is_the_weighted_average_of_the_z_iterates(name):
    """x_{k} = (1 - c_k) x_{k-1} + c_k z_{k}, with c_k = w_k / (w_1 + ... + w_k): the paper's average,
    computed here from the z's the optimizer keeps and its weights, against what eval() writes."""
    params = make_params()
    config = {**CONFIGS[name], "r": 0.5}
    opt = optarena.create(name, params, **config)
    x = [p.detach().clone() for p in params]
    total = 0.0
    for step in range(12):
        set_grads(params, step)
        opt.step()
        group = opt.param_groups[0]
        k = group["k"]
        weight = k**0.5 * group["lr_max"] ** 2.0
        total += weight
        c = weight / total
        x = [(1 - c) * xi + c * opt.state[p]["z"] for xi, p in zip(x, params)]
    opt.eval()
    for p, xi in zip(params, x):
        torch.testing.assert_close(p.detach(), xi, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_a_step_in_eval_mode_is_refused_and_changes_nothing(name):
    params = make_params()
    opt = optarena.create(name, params, **CONFIGS[name])
    steps(opt, params, 0, 3)
    opt.eval()
    before = [p.detach().clone() for p in params]
    state = copy.deepcopy(opt.state_dict())
    set_grads(params, 3)
    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer\.train\(\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(params, before))
    after = opt.state_dict()
    assert after["param_groups"] == state["param_groups"]
    for key in state["state"]:
        for name_ in state["state"][key]:
            assert torch.equal(after["state"][key][name_], state["state"][key][name_])
    opt.train()
    opt.step()  # trains again


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_taken_in_train_mode_resumes_bit_for_bit(name):
    params = make_params()
    opt = optarena.create(name, params, **CONFIGS[name])
    steps(opt, params, 0, 7)
    weights, state = saved(opt, params)
    steps(opt, params, 7, 9)

    resumed = [w.clone().requires_grad_() for w in weights]
    twin = optarena.create(name, resumed, **CONFIGS[name])
    twin.load_state_dict(state)
    assert twin.training
    steps(twin, resumed, 7, 9)
    assert all(torch.equal(a, b) for a, b in zip(params, resumed))
    opt.eval()
    twin.eval()
    assert all(torch.equal(a, b) for a, b in zip(params, resumed))


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_taken_in_eval_mode_resumes_bit_for_bit(name):
    """The usual pattern: eval() to evaluate and save, train() to go on. A new process loads the
    model's x and the optimizer's state (which says eval), calls train() and continues exactly."""
    params = make_params()
    opt = optarena.create(name, params, **CONFIGS[name])
    steps(opt, params, 0, 7)
    opt.eval()
    weights, state = saved(opt, params)
    assert all(g["train_mode"] is False for g in state["param_groups"])
    opt.train()
    steps(opt, params, 7, 9)

    resumed = [w.clone().requires_grad_() for w in weights]
    twin = optarena.create(name, resumed, **CONFIGS[name])
    twin.load_state_dict(state)
    assert not twin.training
    set_grads(resumed, 7)
    with pytest.raises(RuntimeError, match="eval mode"):
        twin.step()
    twin.train()
    steps(twin, resumed, 7, 9)
    assert all(torch.equal(a, b) for a, b in zip(params, resumed))


@pytest.mark.parametrize("name", NAMES)
def test_the_packages_eval_mode_checkpoint_loads_and_continues(name):
    """A checkpoint of the schedulefree package taken in eval mode (its advice) resumes here."""
    theirs = make_params()
    ref = adaptive.schedule_free(KIND[name])(theirs, **CONFIGS[name])
    for step in range(6):
        set_grads(theirs, step)
        ref.step()
    ref.inner.eval()
    weights, state = [p.detach().clone() for p in theirs], copy.deepcopy(ref.state_dict())
    ref.inner.train()
    ours = [w.clone().requires_grad_() for w in weights]
    opt = optarena.create(name, ours, **CONFIGS[name])
    opt.load_state_dict(state)
    opt.train()
    for step in range(6, 20):
        set_grads(ours, step)
        set_grads(theirs, step)
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_groups_added_later_take_the_current_mode():
    params = make_params()
    opt = optarena.ScheduleFreeAdamW(params[:1])
    opt.eval()
    opt.add_param_group({"params": params[1:]})
    assert opt.param_groups[1]["train_mode"] is False
    opt.train()
    assert all(g["train_mode"] for g in opt.param_groups)


def test_half_precision_switch_keeps_the_exact_value():
    """bf16 parameters: eval() and train() move the exact value (parameter plus remainder)."""
    params = [torch.randn(64, dtype=torch.float64).to(torch.bfloat16).requires_grad_()]
    opt = optarena.ScheduleFreeAdamW(params, lr=0.01)
    for step in range(5):
        params[0].grad = torch.sin(params[0].detach().float() + step).to(torch.bfloat16)
        opt.step()
    state = opt.state[params[0]]
    exact_y = params[0].float() + state["param_remainder"]
    opt.eval()
    exact_x = params[0].float() + state["param_remainder"]
    want = exact_y.lerp(state["z"], 1 - 1 / 0.9)
    torch.testing.assert_close(exact_x, want, rtol=1e-6, atol=1e-6)
    opt.train()
    torch.testing.assert_close(params[0].float() + state["param_remainder"], exact_y, rtol=1e-6, atol=1e-6)

"""Hostile and careless inputs to the optimizers' surfaces: arguments, param groups, state dicts.

Every refusal must be the exact error type, name what was wrong, and leave the optimizer as
it was: its param groups, its state and the parameters compare equal before and after.
Property-based cases (Hypothesis, bounded and derandomised) try many keys and values.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optarena
from optarena.optim.base import SCHEDULER_KEYS

BOUNDED = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def make_params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(),
        torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(),
    ]


def stepped(cls=optarena.Adam, steps: int = 2, **kwargs) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    """An optimizer with some state already (``steps`` steps taken)."""
    params = make_params()
    opt = cls(params, **kwargs)
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.sin(p.detach() + step + i)
        opt.step()
    return opt, params


def snapshot(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> Any:
    """Everything a refusal must leave alone: groups (with their tensors' ids), state and values."""
    groups = [
        {k: ([id(p) for p in v] if k == "params" else copy.deepcopy(v)) for k, v in g.items()} for g in opt.param_groups
    ]
    state = {id(p): copy.deepcopy(s) for p, s in opt.state.items()}
    return groups, state, [p.detach().clone() for p in params]


def equal(a: Any, b: Any) -> bool:
    """Exact deep equality; tensors by dtype, shape and bits (NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def assert_refused(opt, params, error: type[BaseException], action, match: str | None = None) -> BaseException:
    before = snapshot(opt, params)
    with pytest.raises(error, match=match) as info:
        action()
    assert equal(snapshot(opt, params), before), "the optimizer changed although it refused"
    return info.value


# -- param-group keys -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "sgd", "adafactor", "lazyadam", "lamb", "ranger"])
def test_misspelled_group_key_at_construction_names_the_closest_key(name):
    group = {"params": make_params(), "weight_dacay": 0.5}
    kept = dict(group)
    with pytest.raises(TypeError, match="'weight_dacay'.*Did you mean 'weight_decay'"):
        optarena.create(name, [group])
    assert group == kept  # the caller's dict is not filled with defaults either


def test_misspelled_group_key_in_add_param_group_changes_nothing():
    opt, params = stepped()
    extra = torch.zeros(2, requires_grad=True)
    assert_refused(
        opt, params, TypeError, lambda: opt.add_param_group({"params": [extra], "lr_decay": 0.1}), "'lr_decay'"
    )


def test_add_param_group_refuses_what_is_not_a_dict():
    opt, params = stepped()
    assert_refused(opt, params, TypeError, lambda: opt.add_param_group([torch.zeros(2)]), "must be a dict")


def test_torch_and_scheduler_keys_are_accepted():
    params = make_params()
    opt = optarena.SGD([{"params": params, "param_names": ["w", "b"], "initial_lr": 0.1, "momentum": 0.9}], lr=0.1)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=10)  # max_lr, min_lr, momentum keys
    torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1)  # base_momentum, max_momentum
    torch.optim.swa_utils.SWALR(opt, swa_lr=0.05)  # swa_lr
    assert set(SCHEDULER_KEYS) <= set(opt.param_groups[0])
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    clone = optarena.SGD(make_params(), lr=0.1, momentum=0.9)
    clone.load_state_dict(opt.state_dict())
    assert clone.param_groups[0]["swa_lr"] == 0.05


@BOUNDED
@given(key=st.text(min_size=1, max_size=20), value=st.one_of(st.floats(), st.integers(), st.booleans(), st.none()))
def test_any_unknown_key_is_a_type_error_naming_it(key, value):
    opt, params = stepped(steps=1)
    valid = opt.valid_group_keys()
    extra = {"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], key: value}
    if key in valid:
        return
    error = assert_refused(opt, params, TypeError, lambda: opt.add_param_group(extra))
    assert repr(key) in str(error)


# -- values changed after construction --------------------------------------------------------


CHANGES = [
    (
        "betas",
        (1, 1),
        ValueError,
        r"param_groups\[0\]\['betas'\] = \(1, 1\).*beta parameter at index 0: 1; allowed range: 0 <= betas\[0\] < 1",
    ),
    ("lr", -1, ValueError, r"param_groups\[0\]\['lr'\] = -1 .*Invalid learning rate: -1; allowed range: 0 <= lr"),
    ("lr", "fast", TypeError, "lr must be a real number"),
    ("eps", float("nan"), ValueError, "epsilon value: nan"),
    ("lr", torch.tensor([0.1, 0.2]), ValueError, "Tensor lr must be 1-element"),
    ("amsgrad", "yes", ValueError, "Invalid amsgrad: 'yes'"),
    ("fused", True, RuntimeError, "`fused` and `foreach` cannot be `True` together"),
]


@pytest.mark.parametrize("key,value,error,match", CHANGES, ids=[f"{k}={v!r}" for k, v, _, _ in CHANGES])
def test_a_value_set_after_construction_is_checked_at_the_next_step(key, value, error, match):
    opt, params = stepped(foreach=True)
    opt.param_groups[0][key] = value
    for p in params:
        p.grad = torch.ones_like(p)
    assert_refused(opt, params, error, opt.step, match)
    with pytest.raises(error):  # refused again until corrected
        opt.step()


def test_in_place_changes_are_noticed_too():
    lr = torch.tensor(0.01)
    opt, params = stepped(lr=lr, betas=[0.9, 0.999])
    lr.fill_(-1.0)
    assert_refused(opt, params, ValueError, opt.step, "learning rate")
    lr.fill_(0.01)
    opt.param_groups[0]["betas"][1] = 1.0
    assert_refused(opt, params, ValueError, opt.step, "beta parameter at index 1")
    opt.param_groups[0]["betas"][1] = 0.999
    opt.step()


def test_combinations_are_checked_after_a_change():
    opt, params = stepped(optarena.SGD, lr=0.1, momentum=0.9, nesterov=True)
    opt.param_groups[0]["momentum"] = 0.0
    assert_refused(opt, params, ValueError, opt.step, "nesterov=True requires momentum > 0")


def test_a_corrected_value_steps_again():
    opt, params = stepped()
    opt.param_groups[0]["betas"] = (1.0, 1.0)
    with pytest.raises(ValueError):
        opt.step()
    opt.param_groups[0]["betas"] = (0.8, 0.99)
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(not torch.equal(p, b) for p, b in zip(params, before))


def test_a_scheduler_changing_lr_every_step_is_checked_and_steps():
    opt, params = stepped(optarena.SGD, lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    for _ in range(5):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        scheduler.step()


@BOUNDED
@given(lr=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), beta=st.floats(-2, 2))
def test_any_value_set_after_construction_steps_or_is_refused_with_nothing_changed(lr, beta):
    opt, params = stepped()
    opt.param_groups[0]["lr"] = lr
    opt.param_groups[0]["betas"] = (beta, 0.999)
    for p in params:
        p.grad = torch.ones_like(p)
    valid = not math.isnan(lr) and lr >= 0 and 0 <= beta < 1
    if valid:
        opt.step()
    else:
        assert_refused(opt, params, ValueError, opt.step, r"param_groups\[0\]")


# -- state dicts ------------------------------------------------------------------------------


def test_misspelled_key_in_a_loaded_group_is_a_type_error():
    opt, params = stepped()
    saved = opt.state_dict()
    saved["param_groups"][0]["weight_dacay"] = saved["param_groups"][0].pop("weight_decay")
    assert_refused(opt, params, TypeError, lambda: opt.load_state_dict(saved), "Did you mean 'weight_decay'")


def test_invalid_value_in_a_loaded_group_is_a_value_error():
    opt, params = stepped()
    saved = copy.deepcopy(opt.state_dict())
    saved["param_groups"][0]["betas"] = (1.0, 1.0)
    assert_refused(opt, params, ValueError, lambda: opt.load_state_dict(saved), "beta parameter at index 0")


def test_adafactor_state_dict_into_adam_and_back_is_refused():
    adafactor, _ = stepped(optarena.Adafactor)
    adam, params = stepped(optarena.Adam)
    assert_refused(adam, params, TypeError, lambda: adam.load_state_dict(adafactor.state_dict()), "unknown key")
    # groups made to fit: the per-parameter state (factored moments) still does not
    mixed = {"state": copy.deepcopy(adafactor.state_dict()["state"]), "param_groups": adam.state_dict()["param_groups"]}
    assert_refused(adam, params, ValueError, lambda: adam.load_state_dict(mixed), "exp_avg_sq_row")
    adafactor, params = stepped(optarena.Adafactor)
    assert_refused(adafactor, params, TypeError, lambda: adafactor.load_state_dict(adam.state_dict()), "unknown key")


def test_a_state_dict_of_another_optimizer_is_refused():
    sgd, _ = stepped(optarena.SGD, lr=0.1, momentum=0.9)
    adam, params = stepped()
    mixed = {"state": copy.deepcopy(sgd.state_dict()["state"]), "param_groups": adam.state_dict()["param_groups"]}
    assert_refused(adam, params, ValueError, lambda: adam.load_state_dict(mixed), "momentum_buffer")


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"state": {}},
        {"param_groups": []},
        {"state": [], "param_groups": []},
        {"state": {0: "not a dict"}, "param_groups": None},
    ],
    ids=["list", "no groups", "no state", "state a list", "groups None"],
)
def test_malformed_state_dicts_are_value_errors(broken):
    opt, params = stepped()
    assert_refused(opt, params, ValueError, lambda: opt.load_state_dict(broken))


def test_a_state_entry_that_is_not_a_dict_is_a_value_error():
    opt, params = stepped()
    saved = copy.deepcopy(opt.state_dict())
    saved["state"][0] = torch.zeros(3)
    assert_refused(opt, params, ValueError, lambda: opt.load_state_dict(saved), r"state\[0\] must be a dict")


def test_lazyadam_loads_adam_without_weight_decay_and_refuses_it_with():
    adam, _ = stepped(torch.optim.Adam)
    lazy, params = stepped(optarena.LazyAdam)
    lazy.load_state_dict(adam.state_dict())
    decayed, _ = stepped(torch.optim.Adam, weight_decay=0.1)
    lazy, params = stepped(optarena.LazyAdam)
    assert_refused(lazy, params, ValueError, lambda: lazy.load_state_dict(decayed.state_dict()), "weight_decay=0.1")


MUTATIONS = st.sampled_from(["drop_state_key", "foreign_state_key", "rename_group_key", "bad_value", "none"])


@BOUNDED
@given(mutation=MUTATIONS, name=st.sampled_from(["adam", "sgd", "rmsprop", "adagrad", "nadam"]))
def test_a_mutated_state_dict_loads_or_is_refused_with_nothing_changed(mutation, name):
    source, _ = stepped(lambda p, **kw: optarena.create(name, p, lr=0.01, **kw))
    saved = copy.deepcopy(source.state_dict())
    first = saved["state"].get(0, {})
    group = saved["param_groups"][0]
    if mutation == "drop_state_key" and first:
        first.pop(sorted(first)[-1])
    elif mutation == "foreign_state_key":
        saved["state"].setdefault(0, {})["row_var"] = torch.zeros(3)
    elif mutation == "rename_group_key":
        group["learning_rate"] = group.pop("lr")
    elif mutation == "bad_value":
        group["lr"] = -0.5
    target, params = stepped(lambda p, **kw: optarena.create(name, p, lr=0.01, **kw))
    refusal = {"foreign_state_key": ValueError, "rename_group_key": TypeError, "bad_value": ValueError}
    if mutation in refusal:
        assert_refused(target, params, refusal[mutation], lambda: target.load_state_dict(saved))
    else:
        target.load_state_dict(saved)
        for p in params:
            p.grad = torch.ones_like(p)
        target.step()


# -- keywords torch.optim has -----------------------------------------------------------------


def test_capturable_on_cpu_is_refused_at_the_step_as_torch_does():
    opt, params = stepped(steps=0, capturable=True)
    for p in params:
        p.grad = torch.ones_like(p)
    assert_refused(opt, params, AssertionError, opt.step, "capturable=True")


def test_differentiable_refuses_a_hyperparameter_that_needs_a_gradient():
    leaves = make_params()
    params = [p.clone() for p in leaves]
    opt = optarena.Adam(params, lr=torch.tensor(0.01, requires_grad=True), differentiable=True)
    for p in params:
        p.grad = torch.ones_like(p)
    assert_refused(opt, params, RuntimeError, opt.step, "'lr' is a tensor that requires a gradient")


def test_fused_with_differentiable_is_refused_with_torch_text():
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        optarena.Adam(make_params(), fused=True, differentiable=True)


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_meta_parameters_step_under_every_nonfinite_policy(policy):
    p = torch.nn.Parameter(torch.empty(4, 3, device="meta"))
    p.grad = torch.empty(4, 3, device="meta")
    opt = optarena.Adam([p], nonfinite=policy)
    opt.step()
    assert opt.state[p]["exp_avg"].is_meta
    assert opt.param_groups[0].get("nonfinite_skips", 0) == 0

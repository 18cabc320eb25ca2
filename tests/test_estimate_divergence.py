"""D-Adaptation and Prodigy: an estimate ``d`` that outgrows the floats is a clear error that changes nothing."""

from __future__ import annotations

import copy

import pytest
import torch

import optarena
from optarena.arena.trial import TrialSpec, run_trial
from optarena.transforms.d_adaptation import EstimateDiverged


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _run_until_it_fails(optimizer, param, grad, steps):
    for step in range(steps):
        param.grad = grad.clone()
        saved, value = copy.deepcopy(optimizer.state_dict()), param.detach().clone()
        try:
            optimizer.step()
        except EstimateDiverged as error:
            return step, error, saved, value
    pytest.fail(f"the estimate stayed representable for {steps} steps")


@pytest.mark.parametrize("fused", [False, True])
def test_dadapt_estimate_that_overflows_float32_raises_and_leaves_everything_as_it_was(fused):
    # one gradient direction for ever: d grows without bound (about 120 steps to pass 3.4e38 here)
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(64))
    grad = torch.randn(64)
    optimizer = optarena.create("dadapt_adam", [param], fused=fused)
    step, error, saved, value = _run_until_it_fails(optimizer, param, grad, 400)
    assert step > 10
    assert isinstance(error, FloatingPointError)
    message = str(error)
    assert "ScaleByDAdaptAdam" in message and "estimate d =" in message and "float32" in message
    assert _same(optimizer.state_dict(), saved)  # estimate, step count, moments and s
    assert torch.equal(param.detach(), value)
    with pytest.raises(EstimateDiverged):  # and it stays an error, not a silent inf
        optimizer.step()


@pytest.mark.parametrize(("dtype", "fails"), [(torch.float32, True), (torch.float64, False)])
def test_prodigy_checks_its_numbers_against_the_math_dtype(dtype, fails):
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(32, dtype=dtype))
    optimizer = optarena.create("prodigy", [param])
    param.grad = torch.randn(32, dtype=dtype)
    optimizer.step()
    # s_weight = (d / d0) dlr = 1e48 and d^2 (1 - beta2) = 1e39: past float32's largest number, inside float64's
    optimizer.param_groups[0].update(d=1e21, d_max=1e21)
    param.grad = torch.randn(32, dtype=dtype)
    saved = copy.deepcopy(optimizer.state_dict())
    if fails:
        with pytest.raises(EstimateDiverged, match="s_weight = 1e\\+48 does not fit float32"):
            optimizer.step()
        assert _same(optimizer.state_dict(), saved)
    else:
        optimizer.step()
        assert optimizer.param_groups[0]["k"] == 2


def test_a_trial_whose_estimate_diverges_is_a_diverged_result_not_a_failure():
    result = run_trial(TrialSpec("toy_workloads:classifier", {}, None, "w", "dadapt_adam", {"lr": 1e45}, 0, "0", 1))
    assert result.status == "diverged"
    assert result.diverged_step == result.steps_done == 1
    assert result.final_metric is None

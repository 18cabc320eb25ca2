"""Preconditioned sharpness: P is what each optimizer divides by, thresholds are where its step turns unstable."""

import pytest
import torch
from hessian_models import classification_batch, explicit_hessian, mlp
from landscape_models import one_thread  # noqa: F401  (autouse)
from torch import nn

import optarena
from optarena.diagnostics import hessian_eigenvalues, preconditioned_sharpness
from optarena.diagnostics.preconditioned import diagonal_preconditioner, stability_threshold

loss_fn = nn.functional.cross_entropy

# (optimizer class, hyperparameters, the state key of the step direction's numerator or None for the gradient)
ADAPTIVE = [
    (optarena.Adam, {"lr": 0.01}, "exp_avg"),
    (optarena.AdamW, {"lr": 0.01, "weight_decay": 0.0}, "exp_avg"),
    (optarena.Adam, {"lr": 0.01, "amsgrad": True}, "exp_avg"),
    (torch.optim.Adam, {"lr": 0.01}, "exp_avg"),
    (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.0, "amsgrad": True}, "exp_avg"),
    (optarena.RMSprop, {"lr": 0.01}, None),
    (torch.optim.RMSprop, {"lr": 0.01, "centered": True}, None),
    (optarena.Adagrad, {"lr": 0.1, "lr_decay": 0.05}, None),
    (torch.optim.Adagrad, {"lr": 0.1}, None),
]


def trained(cls, hyperparameters, steps=3):
    model = mlp()
    batch = classification_batch()
    optimizer = cls(model.parameters(), **hyperparameters)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(batch[0]), batch[1]).backward()
        optimizer.step()
    return model, batch, optimizer


@pytest.mark.parametrize("cls, hyperparameters, numerator", ADAPTIVE)
def test_the_preconditioner_is_what_the_step_divides_by(cls, hyperparameters, numerator):
    model, batch, optimizer = trained(cls, hyperparameters)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    optimizer.zero_grad()
    loss_fn(model(batch[0]), batch[1]).backward()
    gradient = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    optimizer.step()
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    P = diagonal_preconditioner(optimizer, model)
    top = (
        gradient
        if numerator is None
        else torch.cat([optimizer.state[p][numerator].reshape(-1) for p in model.parameters()])
    )
    # theta_t = theta_{t-1} - lr P_t^-1 m_t, with P_t read from the state the step left.
    torch.testing.assert_close(after - before, -hyperparameters["lr"] * top / P, rtol=1e-10, atol=1e-14)


def _flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def _nadam_weights(beta1, decay, t):
    """NAdam's weights of the gradient and of the moving average at step t, from its update rule."""
    mus = [beta1 * (1 - 0.5 * 0.96 ** (i * decay)) for i in range(1, t + 2)]
    product = torch.ones((), dtype=torch.float32)  # kept in float32, as both NAdams keep it (scalar state)
    for mu in mus[:t]:
        product *= mu
    product = float(product)
    return (1 - mus[t - 1]) / (1 - product), mus[t] / (1 - product * mus[t])


def _moving_average(optimizer):
    return _flat(optimizer.state[p]["exp_avg"] for p in optimizer.param_groups[0]["params"])


# Each returns (change, numerator) with change = -numerator / P by the optimizer's update rule.
def nadam_step(optimizer, hp, change, gradient, old):
    t = int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"])
    weight_g, weight_m = _nadam_weights(0.9, hp["momentum_decay"], t)
    return change, hp["lr"] * (weight_g * gradient + weight_m * _moving_average(optimizer))


def moving_average_step(optimizer, hp, change, gradient, old):
    return change, hp["lr"] * _moving_average(optimizer)


def adafactor_step(optimizer, hp, change, gradient, old):
    rho = hp.get("lr") or 1e-2  # the relative step min(1e-2, 1/sqrt(t)) for t < 10,000
    if hp.get("beta1") is None:
        return change, rho * gradient
    # m_t = beta1 m_{t-1} + (1 - beta1) rho P^-1 g, and the change is -m_t
    torch.testing.assert_close(change, -_moving_average(optimizer), rtol=1e-12, atol=0)
    return -(_moving_average(optimizer) - hp["beta1"] * old) / (1 - hp["beta1"]), rho * gradient


# (optimizer class, hyperparameters, steps before the one checked, (change, numerator) of the checked step)
RULES = [
    (optarena.NAdam, {"lr": 0.01, "momentum_decay": 0.05}, 4, nadam_step),
    (torch.optim.NAdam, {"lr": 0.01, "momentum_decay": 4e-3}, 2, nadam_step),
    (optarena.RAdam, {"lr": 0.01}, 3, moving_average_step),  # rho_t <= 5: momentum, P = 1 - beta1^t
    (optarena.RAdam, {"lr": 0.01, "betas": (0.9, 0.9)}, 12, moving_average_step),  # rectified
    (torch.optim.RAdam, {"lr": 0.01, "betas": (0.9, 0.9)}, 12, moving_average_step),
    (optarena.Adafactor, {"clip_threshold": 1e6}, 3, adafactor_step),  # relative step, parameter scale
    (
        optarena.Adafactor,
        {"lr": 0.01, "relative_step": False, "scale_parameter": False, "clip_threshold": 1e6},
        3,
        adafactor_step,
    ),
    (optarena.Adafactor, {"beta1": 0.9, "clip_threshold": 1e6}, 3, adafactor_step),
]


@pytest.mark.parametrize("cls, hyperparameters, steps, expected", RULES)
def test_each_rule_is_what_the_step_divides_by_and_its_eigenvalues_those_of_explicit_p_inverse_h(
    cls, hyperparameters, steps, expected
):
    model, batch, optimizer = trained(cls, hyperparameters, steps)
    before = _flat(p.detach().clone() for p in model.parameters())
    old = _flat(optimizer.state[p].get("exp_avg", torch.zeros_like(p)).clone() for p in model.parameters())
    optimizer.zero_grad()
    loss_fn(model(batch[0]), batch[1]).backward()
    gradient = _flat(p.grad for p in model.parameters())
    optimizer.step()
    after = _flat(p.detach() for p in model.parameters())
    with torch.no_grad():  # the point the step started from: Adafactor's parameter scale is read there
        torch.nn.utils.vector_to_parameters(before, model.parameters())
    P = diagonal_preconditioner(optimizer, model)
    change, numerator = expected(optimizer, hyperparameters, after - before, gradient, old)
    torch.testing.assert_close(change, -numerator / P, rtol=1e-10, atol=1e-14)
    H = explicit_hessian(model, loss_fn, batch)
    exact = torch.linalg.eigvalsh(P.rsqrt()[:, None] * H * P.rsqrt()[None, :]).flip(0)
    found = preconditioned_sharpness(model, loss_fn, batch, optimizer, k=3, tol=1e-10)
    torch.testing.assert_close(found, exact[:3], rtol=0, atol=1e-8 * float(exact[0]))


def test_preconditioned_eigenvalues_are_those_of_p_inverse_h():
    model, batch, optimizer = trained(optarena.Adam, {"lr": 0.01})
    H = explicit_hessian(model, loss_fn, batch)
    scale = diagonal_preconditioner(optimizer, model).rsqrt()
    exact = torch.linalg.eigvalsh(scale[:, None] * H * scale[None, :]).flip(0)
    found = preconditioned_sharpness(model, loss_fn, batch, optimizer, k=3, tol=1e-10)
    torch.testing.assert_close(found, exact[:3], rtol=0, atol=1e-8 * float(exact[0]))
    # Same spectrum as the non-symmetric P^-1 H.
    direct = (
        torch.linalg.eigvals(H / diagonal_preconditioner(optimizer, model)[:, None]).real.sort(descending=True).values
    )
    torch.testing.assert_close(found, direct[:3], rtol=1e-8, atol=0)


def test_for_sgd_it_is_the_plain_sharpness():
    model, batch, optimizer = trained(optarena.SGD, {"lr": 0.1, "momentum": 0.9})
    assert diagonal_preconditioner(optimizer, model) is None
    torch.testing.assert_close(
        preconditioned_sharpness(model, loss_fn, batch, optimizer), hessian_eigenvalues(model, loss_fn, batch)
    )


LARGE_EPS = 1e4
"""Makes P = eps (times 1 - beta1^t for Adam): a constant, as the threshold's analysis assumes."""

THRESHOLD_CASES = [
    (optarena.SGD, {"lr": 0.1}, 2 / 0.1),
    (optarena.SGD, {"lr": 0.1, "momentum": 0.9}, 3.8 / 0.1),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, 3.8 / 0.05),
    (optarena.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, 3.8 / 0.28),
    (optarena.Adam, {"lr": 1.0, "eps": LARGE_EPS}, 38.0),
    (torch.optim.AdamW, {"lr": 1.0, "eps": LARGE_EPS, "betas": (0.8, 0.999), "weight_decay": 0.0}, 3.6 / 0.2),
    (optarena.RMSprop, {"lr": 1.0, "eps": LARGE_EPS, "momentum": 0.5}, 3.0),
    (optarena.Adagrad, {"lr": 1.0, "eps": LARGE_EPS}, 2.0),
]


START = 1e-100
"""So small that even 300 unstable steps leave the gradient far below eps: P stays constant."""


def growth(cls, hyperparameters, curvature, steps=300):
    """|x_T / x_0| for the optimizer on the quadratic curvature / 2 * x^2, and P at the end."""
    model = nn.Module()
    model.x = nn.Parameter(torch.full((1,), START, dtype=torch.float64))
    optimizer = cls(model.parameters(), **hyperparameters)
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * curvature * model.x**2).sum().backward()
        optimizer.step()
    return float(model.x.detach().abs()) / START, diagonal_preconditioner(optimizer, model)


@pytest.mark.parametrize("cls, hyperparameters, expected", THRESHOLD_CASES)
def test_the_threshold_is_where_the_optimizer_turns_unstable_on_a_quadratic(cls, hyperparameters, expected):
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    threshold = stability_threshold(cls([x], **hyperparameters))
    assert threshold == pytest.approx(expected, rel=1e-12)
    frozen_p = LARGE_EPS if "eps" in hyperparameters else 1.0
    # Stable a tenth below the threshold (Adam's first steps, with bias-corrected P smaller, grow before it decays),
    # unstable a tenth above.
    below, P = growth(cls, hyperparameters, 0.9 * threshold * frozen_p, steps=1000)
    above, _ = growth(cls, hyperparameters, 1.1 * threshold * frozen_p, steps=300)
    assert below < 1e-2 and above > 1e2
    if P is not None:  # P stayed the constant the analysis assumes
        assert float(P) == pytest.approx(LARGE_EPS, rel=1e-3)


def late_growth(cls, hyperparameters, curvature, settle=300, steps=700):
    """|x_(settle+steps) / x_settle| on the quadratic curvature / 2 * x^2, once the first steps' coefficients
    (NAdam's momentum schedule, RAdam's un-rectified start) have settled; the optimizer at the end."""
    model = nn.Module()
    model.x = nn.Parameter(torch.full((1,), START, dtype=torch.float64))
    optimizer = cls(model.parameters(), **hyperparameters)
    settled = None
    for step in range(settle + steps):
        if step == settle:
            settled = float(model.x.detach().abs())
        optimizer.zero_grad()
        (0.5 * curvature * model.x**2).sum().backward()
        optimizer.step()
    return float(model.x.detach().abs()) / settled, optimizer, model


LATE_THRESHOLD_CASES = [
    # mu_t = beta1 at once: c_g = 1 - beta1, c_m = beta1 once prod mu ~ 0
    (optarena.NAdam, {"lr": 1.0, "eps": LARGE_EPS, "momentum_decay": 1e3}, 3.8 / (0.1 * 1.9 + 0.9 * 0.1), LARGE_EPS),
    # mu_t = beta1 / 2 throughout
    (
        torch.optim.NAdam,
        {"lr": 1.0, "eps": LARGE_EPS, "momentum_decay": 0.0},
        3.8 / (0.55 * 1.9 + 0.45 * 0.1),
        LARGE_EPS,
    ),
    (optarena.RAdam, {"lr": 1.0, "eps": LARGE_EPS, "betas": (0.9, 0.9)}, 38.0, LARGE_EPS),  # rectified from step 6
    (optarena.RAdam, {"lr": 0.5, "eps": LARGE_EPS, "betas": (0.9, 0.5)}, 76.0, 1.0),  # rho_inf = 3: never rectified
    (optarena.Adafactor, {"lr": 1.0, "relative_step": False, "scale_parameter": False, "eps": (1e8, 1e-3)}, 2.0, 1e4),
    (
        optarena.Adafactor,
        {"lr": 0.5, "relative_step": False, "scale_parameter": False, "eps": (1e8, 1e-3), "beta1": 0.9},
        76.0,
        1e4,
    ),
]


@pytest.mark.parametrize("cls, hyperparameters, expected, frozen_p", LATE_THRESHOLD_CASES)
def test_the_new_rules_thresholds_are_where_the_optimizer_turns_unstable(cls, hyperparameters, expected, frozen_p):
    below, optimizer, model = late_growth(cls, hyperparameters, 0.9 * expected * frozen_p)
    above, _, _ = late_growth(cls, hyperparameters, 1.1 * expected * frozen_p, steps=300)
    assert stability_threshold(optimizer) == pytest.approx(expected, rel=1e-9)
    assert below < 1e-2 and above > 1e2
    assert float(diagonal_preconditioner(optimizer, model)) == pytest.approx(frozen_p, rel=1e-3)  # P settled


def test_unsupported_optimizers_and_missing_state_are_refused_clearly():
    model, batch = mlp(), classification_batch()
    with pytest.raises(
        TypeError,
        match=r"no diagonal preconditioner is defined for LAMB \(its trust ratio .*\); supported: .*optarena\.Adam",
    ):
        preconditioned_sharpness(model, loss_fn, batch, optarena.LAMB(model.parameters()))
    with pytest.raises(TypeError, match=r"for Adafactor \(its second moment.*optarena\.Adafactor's\)"):
        preconditioned_sharpness(model, loss_fn, batch, torch.optim.Adafactor(model.parameters()))
    with pytest.raises(ValueError, match="NAdam's threshold depends on its momentum schedule's step"):
        stability_threshold(optarena.NAdam(model.parameters()))
    with pytest.raises(TypeError, match="for Lookahead"):
        preconditioned_sharpness(model, loss_fn, batch, optarena.Lookahead(optarena.SGD(model.parameters(), lr=0.1)))
    with pytest.raises(ValueError, match="Adam's preconditioner exists only after its first step"):
        preconditioned_sharpness(model, loss_fn, batch, optarena.Adam(model.parameters()))
    first_layer_only = torch.optim.RMSprop(model[0].parameters())
    loss_fn(model(batch[0]), batch[1]).backward()
    first_layer_only.step()
    with pytest.raises(ValueError, match=r"parameter '2.weight' is not among the optimizer's parameters"):
        preconditioned_sharpness(model, loss_fn, batch, first_layer_only)
    two_rates = optarena.SGD([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.5}], lr=0.1)
    with pytest.raises(ValueError, match="different stability thresholds"):
        stability_threshold(two_rates)

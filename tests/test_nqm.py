"""The noisy quadratic model: closed forms against independent derivations and against simulation."""

from __future__ import annotations

import math

import pytest
import torch

from optarena.functions.nqm import NoisyQuadraticModel
from optarena.functions.nqm_study import batch_size_sweep, nqm_report, simulate


def small(batch_size: float = 2.0, dim: int = 8) -> NoisyQuadraticModel:
    return NoisyQuadraticModel(dim=dim, batch_size=batch_size)


def covariance_curve(model: NoisyQuadraticModel, transitions, start, steps: int) -> torch.Tensor:
    """Expected loss per step from propagating each coordinate's full covariance matrix.

    ``transitions(t, h)`` gives step ``t``'s linear map ``A`` and noise direction ``b`` for a
    state vector whose last entry is theta: ``z' = A z + b eps``; ``start(theta0)`` the state
    at step 0. Written independently of the closed forms under test: it works with whole
    covariance matrices, not with expanded moment recursions.
    """
    losses = torch.zeros(steps + 1, dtype=torch.float64)
    for h, var, theta0 in zip(model.curvatures.tolist(), model.noise_variance.tolist(), model.initial.tolist()):
        z0 = start(theta0)
        S = torch.outer(z0, z0)
        losses[0] += 0.5 * h * S[-1, -1]
        for t in range(1, steps + 1):
            A, b = transitions(t, h)
            S = A @ S @ A.T + var * torch.outer(b, b)
            losses[t] += 0.5 * h * S[-1, -1]
    return losses


def test_sgd_matches_the_explicit_geometric_formula():
    model, lr, steps = small(), 0.7, 40
    h, var, theta0 = model.curvatures, model.noise_variance, model.initial
    r2 = (1 - lr * h) ** 2
    fixed = lr**2 * var / (1 - r2)
    t = torch.arange(steps + 1, dtype=torch.float64).unsqueeze(1)
    expected = (0.5 * h * (r2**t * (theta0**2 - fixed) + fixed)).sum(dim=1)
    torch.testing.assert_close(model.expected_loss("sgd", lr, steps), expected, rtol=1e-12, atol=0)
    assert float(model.steady_state_loss("sgd", lr)) == pytest.approx(float((0.5 * h * fixed).sum()), rel=1e-12)


def test_momentum_matches_the_propagated_covariance():
    model, lr, beta, steps = small(), 0.3, 0.8, 40

    def heavy_ball(t, h):  # z = (v, theta): v' = beta v + h theta + eps; theta' = theta - lr v'
        A = torch.tensor([[beta, h], [-lr * beta, 1 - lr * h]], dtype=torch.float64)
        return A, torch.tensor([1.0, -lr], dtype=torch.float64)

    start = lambda theta0: torch.tensor([0.0, theta0], dtype=torch.float64)  # noqa: E731 - no velocity yet
    expected = covariance_curve(model, heavy_ball, start, steps)
    torch.testing.assert_close(model.expected_loss("momentum", lr, steps, momentum=beta), expected, rtol=1e-10, atol=0)


def test_lookahead_matches_the_propagated_covariance_of_slow_and_fast_weights():
    model, lr, k, alpha, steps = small(), 0.6, 4, 0.3, 37

    def lookahead(t, h):  # z = (phi, theta)
        inner = torch.tensor([[1.0, 0.0], [0.0, 1 - lr * h]], dtype=torch.float64)
        noise = torch.tensor([0.0, -lr], dtype=torch.float64)
        if t % k:
            return inner, noise
        sync = torch.tensor([[1 - alpha, alpha], [1 - alpha, alpha]], dtype=torch.float64)
        return sync @ inner, sync @ noise

    start = lambda theta0: torch.tensor([theta0, theta0], dtype=torch.float64)  # noqa: E731 - fast = slow
    expected = covariance_curve(model, lookahead, start, steps)
    torch.testing.assert_close(
        model.expected_loss("lookahead", lr, steps, k=k, alpha=alpha), expected, rtol=1e-10, atol=0
    )


@pytest.mark.parametrize(
    "method, options",
    [("sgd", {}), ("momentum", {"momentum": 0.9}), ("lookahead", {"k": 5, "alpha": 0.5})],
)
def test_closed_form_agrees_with_simulated_optarena_runs(method, options):
    model, lr, steps = small(batch_size=4.0, dim=10), 0.08 if method == "momentum" else 0.8, 60
    exact = model.expected_loss(method, lr, steps, **options)
    sim = simulate(model, method, lr, steps, runs=3000, seed=11, **options)
    z = (sim.mean[1:] - exact[1:]) / sim.stderr[1:]
    assert float(z.abs().max()) < 5.0
    assert float(z.mean().abs()) < 1.5  # no systematic offset over the whole run
    assert float(sim.mean[0]) == pytest.approx(model.initial_loss) and float(sim.stderr[0]) == 0.0


def test_a_wrong_closed_form_would_be_caught_by_the_simulation():
    # The same check rejects SGD's curve as a description of momentum's runs.
    model, steps = small(batch_size=4.0, dim=10), 60
    sim = simulate(model, "momentum", 0.08, steps, runs=3000, seed=11, momentum=0.9)
    wrong = model.expected_loss("sgd", 0.08, steps)
    assert float(((sim.mean[1:] - wrong[1:]) / sim.stderr[1:]).abs().max()) > 5.0


@pytest.mark.parametrize("lr", [0.1, 0.5, 1.0, 1.9])
def test_lookahead_has_a_lower_steady_state_than_sgd_at_the_same_learning_rate(lr):
    model = NoisyQuadraticModel(dim=50, batch_size=1.0)
    sgd = float(model.steady_state_loss("sgd", lr))
    lookahead = float(model.steady_state_loss("lookahead", lr, k=5, alpha=0.5))
    assert 0 < lookahead < sgd < math.inf


def test_steady_state_is_the_limit_of_the_curve_and_inf_when_unstable():
    model = small(dim=4)
    for method, options in [("sgd", {}), ("momentum", {"momentum": 0.5}), ("lookahead", {"k": 3})]:
        curve = model.expected_loss(method, 0.9, 3000, **options)
        limit = float(model.steady_state_loss(method, 0.9, **options))
        at = -1 if method != "lookahead" else 3000 - 3000 % 3
        assert float(curve[at]) == pytest.approx(limit, rel=1e-9)
    assert math.isinf(float(model.steady_state_loss("sgd", 2.5)))  # lr * h_max > 2
    assert math.isinf(float(model.steady_state_loss("momentum", 4.0, momentum=0.9)))  # lr h > 2 (1 + beta)


def test_learning_rates_can_be_a_tensor():
    model = small()
    rates = torch.tensor([0.1, 0.5])
    curves = model.expected_loss("momentum", rates, 10)
    assert curves.shape == (2, 11)
    torch.testing.assert_close(curves[1], model.expected_loss("momentum", 0.5, 10))


def test_steps_to_target_agrees_with_the_curve():
    model = small(batch_size=64.0)
    curve = model.expected_loss("sgd", 0.5, 3000)
    for fraction in (0.8, 0.3, 0.05):
        target = fraction * model.initial_loss
        first = int((curve <= target).nonzero()[0])
        found = float(model.steps_to_target("sgd", 0.5, target))
        assert curve[int(found)] <= target
        if first <= 16:
            assert found == first
        else:
            assert first <= found <= first * 2 ** (1 / 16) + 1
    assert math.isinf(float(model.steps_to_target("sgd", 0.5, 1e-9, max_steps=10**4)))  # below the noise floor


def test_batch_size_sweep_shows_perfect_scaling_then_a_plateau_and_momentum_helps_at_large_batches():
    model = NoisyQuadraticModel(dim=100)
    sizes = [1.0, 2.0, 4.0, 4096.0, 8192.0]
    results = {r.method: r for r in batch_size_sweep(model, sizes, 0.01 * model.initial_loss)}
    sgd = results["sgd"].steps
    assert sgd[0] / sgd[1] == pytest.approx(2.0, rel=0.15)  # noise-dominated: doubling B halves the steps
    assert sgd[1] / sgd[2] == pytest.approx(2.0, rel=0.15)
    assert sgd[3] / sgd[4] == pytest.approx(1.0, rel=0.1)  # curvature-dominated: B no longer helps
    assert results["momentum"].steps[4] < 0.8 * sgd[4]
    assert results["momentum"].steps[0] == pytest.approx(sgd[0], rel=0.15)
    for result in results.values():
        assert all(0 < lr <= 10 for lr in result.learning_rates)


def test_minibatch_loss_has_the_noisy_gradient():
    model = small()
    theta = torch.randn(3, model.dim, dtype=torch.float64, requires_grad=True)
    loss = model.minibatch_loss(theta, torch.Generator().manual_seed(5))
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    torch.testing.assert_close(grad, model.gradient(theta, torch.Generator().manual_seed(5)))
    assert loss.shape == (3,)


def test_report_holds_what_the_picture_needs():
    report = nqm_report(dim=6, steps=30, runs=40, batch_sizes=[1.0, 2.0, 4.0])
    assert set(report.curves) == set(report.simulations) == set(report.steady) == {"sgd", "momentum", "lookahead"}
    assert all(len(c) == 31 for c in report.curves.values())
    assert [r.batch_sizes for r in report.sweep] == [[1.0, 2.0, 4.0]] * 3


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda m: m.recursion("adam", 0.1), ValueError, "unknown NQM method 'adam'"),
        (lambda m: m.recursion("sgd", -0.1), ValueError, "learning rate must be a number > 0"),
        (lambda m: m.recursion("momentum", 0.1, momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
        (lambda m: m.recursion("lookahead", 0.1, k=0), ValueError, "k must be a whole number >= 1"),
        (lambda m: m.recursion("lookahead", 0.1, alpha=0.0), ValueError, r"alpha must be in \(0, 1\]"),
        (lambda m: m.recursion("sgd", 0.1, momentum=0.9), TypeError, "unknown option"),
        (lambda m: m.loss(torch.zeros(3)), ValueError, r"theta\[\.\.\., 8\]"),
        (lambda m: m.steps_to_target("sgd", 0.1, 0.0), ValueError, "target must be a finite loss > 0"),
    ],
)
def test_bad_input_is_named(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call(small())


def test_bad_models_are_rejected():
    with pytest.raises(ValueError, match="dim must be a whole number >= 1"):
        NoisyQuadraticModel(dim=0)
    with pytest.raises(ValueError, match=r"batch_size must be in \(0, inf\)"):
        NoisyQuadraticModel(batch_size=0)
    with pytest.raises(ValueError, match="curvatures needs 8 values"):
        NoisyQuadraticModel(dim=8, curvatures=[1.0, 2.0])

"""The analytic test functions: values, gradients, minima, batching, the registry and gradient noise."""

from __future__ import annotations

import math

import pytest
import torch

from optarena import functions
from optarena.functions import NoisyGradient, TestFunction

DEFAULTS = [cls() for cls in functions.FUNCTIONS.values()]
VARIANTS = DEFAULTS + [
    functions.Rosenbrock(dim=5),
    functions.Rosenbrock(a=2.0, b=10.0),
    functions.Rastrigin(dim=3, A=5.0),
    functions.IllConditionedQuadratic(dim=4, condition=1000.0),
    functions.IllConditionedQuadratic(condition=10.0, angle=-45.0),
]
IDS = [f"{f.name}-{f.dim}d-{i}" for i, f in enumerate(VARIANTS)]


@pytest.mark.parametrize(
    "name, point, expected",
    [
        ("rosenbrock", (0.0, 0.0), 1.0),
        ("rosenbrock", (-1.2, 1.0), 24.2),
        ("rastrigin", (0.5, 0.5), 40.5),
        ("rastrigin", (1.0, 0.0), 1.0),
        ("beale", (0.0, 0.0), 1.5**2 + 2.25**2 + 2.625**2),
        ("beale", (2.0, 0.0), 0.5**2 + 0.25**2 + 0.625**2),
        ("himmelblau", (0.0, 0.0), 170.0),
        ("saddle", (0.0, 0.0), 0.25),
        ("saddle", (1.0, 0.0), 1.25),
    ],
)
def test_known_values(name, point, expected):
    assert float(functions.get(name)(torch.tensor(point, dtype=torch.float64))) == pytest.approx(expected, rel=1e-12)


def test_quadratic_has_its_eigenvalues_along_its_rotated_axes():
    f = functions.IllConditionedQuadratic(condition=100.0, angle=30.0)
    t = math.radians(30.0)
    steep = torch.tensor([math.cos(t), math.sin(t)], dtype=torch.float64)
    flat = torch.tensor([-math.sin(t), math.cos(t)], dtype=torch.float64)
    assert float(f(3 * steep)) == pytest.approx(0.5 * 9, rel=1e-12)
    assert float(f(3 * flat)) == pytest.approx(0.5 * 9 / 100, rel=1e-12)


@pytest.mark.parametrize("f", VARIANTS, ids=IDS)
def test_closed_form_gradient_matches_autograd(f):
    generator = torch.Generator().manual_seed(1)
    x = f.sample_starts(64, generator, dtype=torch.float64)
    leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(f(leaf).sum(), leaf)
    torch.testing.assert_close(f.grad(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("f", VARIANTS, ids=IDS)
def test_minima_have_the_minimum_value_and_zero_gradient(f):
    minima = f.minima_tensor()
    torch.testing.assert_close(
        f(minima), torch.full((len(f.minima),), f.min_value, dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(f.grad(minima), torch.zeros_like(minima), atol=1e-9, rtol=0)
    # A local minimum: every small step goes up.
    generator = torch.Generator().manual_seed(2)
    nudges = 1e-3 * torch.randn(200, f.dim, generator=generator, dtype=torch.float64)
    for minimum in minima:
        assert bool((f(minimum + nudges) > f.min_value).all())


@pytest.mark.parametrize("f", [f for f in VARIANTS if f.dim == 2], ids=[i for i, f in zip(IDS, VARIANTS) if f.dim == 2])
def test_no_point_of_the_plotting_box_is_below_the_known_minimum(f):
    X, Y, Z = f.grid(401)
    assert float(Z.min()) >= f.min_value - 1e-12
    assert torch.isfinite(Z).all()


@pytest.mark.parametrize("f", DEFAULTS, ids=[f.name for f in DEFAULTS])
def test_every_function_has_the_documented_attributes(f):
    assert isinstance(f, TestFunction)
    assert f.name in functions.names() and f.description and f.formula
    assert len(f.bounds) == f.dim == len(f.start) == len(f.start_region)
    for (low, high), s in zip(f.bounds, f.start):
        assert low < s < high
    for (low, high), (inner_low, inner_high) in zip(f.bounds, f.start_region):
        assert low <= inner_low < inner_high <= high
    for minimum in f.minima:
        assert all(low <= m <= high for (low, high), m in zip(f.bounds, minimum))
    assert float(f.gap(f.start_tensor())) > 0


def test_calls_are_batched_over_leading_dimensions():
    f = functions.get("beale")
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    values = f(x)
    assert values.shape == (3, 4)
    assert float(values[2, 1]) == float(f(x[2, 1]))
    assert f.grad(x).shape == (3, 4, 2)
    assert f.distance_to_minimum(x).shape == (3, 4)


def test_points_of_the_wrong_dimension_are_rejected():
    with pytest.raises(ValueError, match=r"last dimension 2 \(x\[\.\.\., 2\]\), got shape \(4, 3\)"):
        functions.get("rosenbrock")(torch.zeros(4, 3))


def test_nearest_minimum_and_distance():
    f = functions.get("himmelblau")
    points = torch.tensor([[2.9, 2.1], [-3.7, -3.2]], dtype=torch.float64)
    torch.testing.assert_close(f.nearest_minimum(points), f.minima_tensor()[[0, 2]])
    expected = torch.linalg.vector_norm(points - f.minima_tensor()[[0, 2]], dim=-1)
    torch.testing.assert_close(f.distance_to_minimum(points), expected)


def test_sample_starts_are_in_the_region_and_reproducible():
    f = functions.get("saddle")
    a = f.sample_starts(500, torch.Generator().manual_seed(3), dtype=torch.float64)
    b = f.sample_starts(500, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert a.shape == (500, 2) and torch.equal(a, b)
    for i, (low, high) in enumerate(f.start_region):
        assert bool((a[:, i] >= low).all() and (a[:, i] <= high).all())
    with pytest.raises(ValueError, match="whole number >= 1"):
        f.sample_starts(0)


def test_get_is_case_insensitive_and_passes_options():
    f = functions.get("  Rosenbrock ", dim=3)
    assert isinstance(f, functions.Rosenbrock) and f.dim == 3 and f.minima == [(1.0, 1.0, 1.0)]
    assert [g.name for g in functions.available()] == functions.names()


def test_get_names_close_matches_and_valid_options():
    with pytest.raises(ValueError, match=r"Unknown test function 'rosenbrok'\. Did you mean 'rosenbrock'\?"):
        functions.get("rosenbrok")
    with pytest.raises(TypeError, match=r"unknown option 'dims'\. Did you mean 'dim'\? Its options: dim, a, b"):
        functions.get("rosenbrock", dims=3)
    with pytest.raises(ValueError, match="only applies with noise"):
        functions.get("rosenbrock", seed=3)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: functions.Rosenbrock(dim=3, a=2.0), "only for a=1"),
        (lambda: functions.Rosenbrock(dim=1), "dim must be a whole number >= 2"),
        (lambda: functions.Rosenbrock(b=-1.0), "b must be a finite number > 0"),
        (lambda: functions.IllConditionedQuadratic(condition=0.5), "condition must be >= 1"),
        (lambda: functions.IllConditionedQuadratic(dim=3, angle=10.0), "two dimensions only"),
        (lambda: functions.Rastrigin(dim=0), "dim must be a whole number >= 1"),
    ],
)
def test_bad_settings_are_rejected(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


# -- gradient noise -------------------------------------------------------------------------------


def test_noisy_gradient_keeps_the_value_and_adds_zero_mean_noise_of_the_given_scale():
    exact = functions.get("rosenbrock")
    noisy = functions.get("rosenbrock", noise=0.5, seed=4)
    assert isinstance(noisy, NoisyGradient) and noisy.minima == exact.minima and noisy.bounds == exact.bounds
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64).repeat(20000, 1)
    leaf = x.clone().requires_grad_(True)
    value = noisy(leaf)
    torch.testing.assert_close(value.detach(), exact(x))
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    error = grad - exact.grad(x)
    assert error.mean(dim=0).abs().max() < 0.02  # about 6 standard errors of 0.5 / sqrt(20000)
    assert error.std(dim=0).sub(0.5).abs().max() < 0.02
    error = noisy.grad(x) - exact.grad(x)
    assert error.std(dim=0).sub(0.5).abs().max() < 0.02


def test_noisy_gradient_is_reproducible_by_seed_and_exact_at_zero_noise():
    a = functions.get("beale", noise=1.0, seed=7)
    b = functions.get("beale", noise=1.0, generator=torch.Generator().manual_seed(7))
    x = torch.zeros(5, 2, dtype=torch.float64)
    first = a.grad(x)
    assert torch.equal(first, b.grad(x))
    assert not torch.equal(first, a.grad(x))
    assert torch.equal(first, a.reseed(7).grad(x))
    silent = functions.get("beale", noise=0.0)
    assert torch.equal(silent.grad(x), functions.get("beale").grad(x))


@pytest.mark.parametrize("noise", [-1.0, math.nan, True])
def test_bad_noise_is_rejected(noise):
    with pytest.raises(ValueError, match="gradient noise must be a finite number >= 0"):
        functions.get("saddle", noise=noise)


def test_schedule_free_paths_show_the_average_point():
    """A Schedule-Free path is the average x (what the optimizer evaluates), its gradients taken
    at y: the same as the schedulefree package's eval() after each step."""
    import schedulefree

    from optarena.functions.paths import run_paths

    function = functions.get("rosenbrock")
    starts = torch.tensor([[-1.5, 2.0], [0.5, -0.5]], dtype=torch.float64)
    paths = run_paths(function, "schedule_free_sgd", starts, 25, {"lr": 1e-3})
    for row in range(2):
        y = torch.nn.Parameter(starts[row].clone())
        ref = schedulefree.SGDScheduleFree([y], lr=1e-3)
        ref.train()
        for t in range(1, 26):
            y.grad = function.gradient(y.detach().unsqueeze(0))[0]
            ref.step()
            ref.eval()
            torch.testing.assert_close(paths.points[t, row], y.detach(), rtol=1e-10, atol=1e-12)
            ref.train()

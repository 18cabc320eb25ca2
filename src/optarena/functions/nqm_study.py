"""Experiments on the noisy quadratic model: simulation and the batch-size sweep.

:func:`simulate` runs optarena's own SGD and heavy-ball momentum (and Lookahead around
SGD, written out here: slow weights ``phi <- phi + alpha (theta - phi)`` every ``k`` steps,
Zhang et al. 2019, https://arxiv.org/abs/1907.08610) on many independent copies of the
model at once, so the closed forms of :mod:`optarena.functions.nqm` can be checked against
real optimizer steps. :func:`batch_size_sweep` asks the closed form how many steps each
method needs to reach a target loss at each batch size, with the learning rate tuned per
batch size on a grid (Zhang et al. 2019, https://arxiv.org/abs/1907.04164, Section 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optarena.checks import fits_in_memory, whole_number, whole_numbers
from optarena.functions.nqm import DEFAULT_ALPHA, DEFAULT_K, DEFAULT_MOMENTUM, METHODS, NoisyQuadraticModel
from optarena.registry import create


@dataclass(frozen=True)
class Simulation:
    """The mean loss over ``runs`` independent copies at every step, and its standard error."""

    mean: Tensor
    stderr: Tensor
    runs: int


def simulate(
    model: NoisyQuadraticModel,
    method: str,
    lr: float,
    steps: int,
    runs: int = 1000,
    seed: int = 0,
    **options: Any,
) -> Simulation:
    """Run ``method`` ('sgd', 'momentum' or 'lookahead') on ``runs`` copies of the model.

    SGD and momentum are ``optarena.create("sgd" | "momentum", ...)`` stepping on noisy
    gradients from :meth:`NoisyQuadraticModel.gradient`; Lookahead wraps optarena SGD. The
    loss recorded after step ``t`` is that of the parameters the optimizer holds (for
    Lookahead, the fast weights, reset to the slow weights after every ``k``-th step).
    """
    if method not in METHODS:
        raise ValueError(f"unknown NQM method {method!r}; allowed: {', '.join(map(repr, METHODS))}")
    whole_number("runs", runs, 2)
    generator = torch.Generator().manual_seed(seed)
    theta = torch.nn.Parameter(model.initial.repeat(runs, 1))
    if method == "momentum":
        optimizer = create("momentum", [theta], lr=lr, momentum=options.get("momentum", DEFAULT_MOMENTUM))
    else:
        optimizer = create("sgd", [theta], lr=lr)
    k = options.get("k", DEFAULT_K)
    alpha = options.get("alpha", DEFAULT_ALPHA)
    slow = theta.detach().clone()
    losses = [model.loss(theta.detach())]
    with torch.no_grad():
        for step in range(1, steps + 1):
            theta.grad = model.gradient(theta, generator)
            optimizer.step()
            if method == "lookahead" and step % k == 0:
                slow += alpha * (theta - slow)
                theta.copy_(slow)
            losses.append(model.loss(theta))
    per_run = torch.stack(losses)  # [steps + 1, runs]
    return Simulation(per_run.mean(dim=1), per_run.std(dim=1) / math.sqrt(runs), runs)


@dataclass(frozen=True)
class SweepResult:
    """Steps to the target per batch size for one method, at the best learning rate of the grid."""

    method: str
    batch_sizes: list[float]
    steps: list[float]
    """``inf`` where no learning rate of the grid reaches the target within ``max_steps``."""
    learning_rates: list[float]


def _fastest(
    model: NoisyQuadraticModel, method: str, grid: Tensor, target: float, max_steps: int, options: dict[str, Any]
) -> tuple[float, float]:
    """The fewest steps to ``target`` over ``grid``, refined once between the best point's neighbours."""
    found = model.steps_to_target(method, grid, target, max_steps=max_steps, first_only=True, **options)
    best = int(torch.argmin(found))
    if not math.isfinite(float(found[best])):
        return math.inf, math.nan
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fine = torch.logspace(math.log10(low), math.log10(high), 11, dtype=torch.float64)
    refined = model.steps_to_target(method, fine, target, max_steps=max_steps, first_only=True, **options)
    index = int(torch.argmin(refined))
    if float(refined[index]) <= float(found[best]):
        return float(refined[index]), float(fine[index])
    return float(found[best]), float(grid[best])


def batch_size_sweep(
    model: NoisyQuadraticModel,
    batch_sizes: Sequence[float],
    target: float,
    methods: Sequence[str] = METHODS,
    learning_rates: Tensor | None = None,
    max_steps: int = 10**7,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[SweepResult]:
    """For each method and batch size, the fewest steps to reach ``target`` over learning rates.

    ``learning_rates`` is the coarse grid (default 21 log-spaced values from 1e-4 to 10, four
    per decade); the best point is refined once on 11 values between its neighbours.
    ``options`` gives per-method settings (``{"momentum": {"momentum": 0.9}, "lookahead": {"k": 5}}``).
    """
    grid = learning_rates if learning_rates is not None else torch.logspace(-4, 1, 21, dtype=torch.float64)
    options = options or {}
    results = []
    for method in methods:
        steps, rates = [], []
        for batch_size in batch_sizes:
            found, rate = _fastest(
                model.with_batch_size(batch_size), method, grid, target, max_steps, options.get(method, {})
            )
            steps.append(found)
            rates.append(rate)
        results.append(SweepResult(method, [float(b) for b in batch_sizes], steps, rates))
    return results


@dataclass(frozen=True)
class NQMReport:
    """Everything the NQM picture shows, computed from the closed forms and the simulations."""

    dim: int
    lr: float
    batch_size: float
    steps: int
    options: dict[str, dict[str, Any]]
    curves: dict[str, Tensor]
    """Closed-form expected loss per step, by method."""
    simulations: dict[str, Simulation]
    steady: dict[str, float]
    """Closed-form steady-state loss (for Lookahead: of the slow weights), by method."""
    target: float
    sweep: list[SweepResult]
    initial_loss: float


def nqm_report(
    dim: int = 100,
    lr: float = 0.5,
    batch_size: float = 4.0,
    steps: int = 1000,
    runs: int = 200,
    seed: int = 0,
    batch_sizes: Sequence[float] = tuple(2.0**k for k in range(15)),
    target_fraction: float = 0.01,
    momentum: float = DEFAULT_MOMENTUM,
    k: int = DEFAULT_K,
    alpha: float = DEFAULT_ALPHA,
) -> NQMReport:
    """The closed-form curves at one learning rate and batch size, checked by simulation, and the sweep.

    The sweep's target is ``target_fraction`` of the initial loss.
    """
    if not 0 < target_fraction < 1:
        raise ValueError(f"target_fraction must be in (0, 1), got {target_fraction!r}")
    whole_numbers(dim=dim, steps=steps, runs=runs)
    # the simulated copies (parameters, gradients, noise, optimizer state) and the per-step curves
    fits_in_memory(
        f"{runs} runs of a {dim}-dimensional model over {steps} steps",
        8 * (6 * runs * dim + (steps + 1) * (runs + 4 * dim)),
        "lower --runs, --dim or --steps",
    )
    model = NoisyQuadraticModel(dim, batch_size)
    options: dict[str, dict[str, Any]] = {
        "sgd": {},
        "momentum": {"momentum": momentum},
        "lookahead": {"k": k, "alpha": alpha},
    }
    curves = {m: model.expected_loss(m, lr, steps, **options[m]) for m in METHODS}
    simulations = {m: simulate(model, m, lr, steps, runs, seed, **options[m]) for m in METHODS}
    steady = {m: float(model.steady_state_loss(m, lr, **options[m])) for m in METHODS}
    target = target_fraction * model.initial_loss
    sweep = batch_size_sweep(model, batch_sizes, target, METHODS, options=options)
    return NQMReport(
        dim, lr, batch_size, steps, options, curves, simulations, steady, target, sweep, model.initial_loss
    )

"""Run an optimizer on a test function from many start points at once, recording every step.

All start points advance together. For an optimizer whose transforms are all elementwise
(each coordinate's update depends only on that coordinate), the starts are the rows of one
``[n, dim]`` parameter, which is exactly ``n`` independent runs. Otherwise (trust ratios,
norms, factored moments, wrappers) each start is its own ``[dim]`` parameter of one
optimizer, which is again ``n`` independent runs: these optimizers act per tensor. Gradients
come from the function's closed form (:meth:`TestFunction.grad`), not from autograd.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from optarena.checks import fits_in_memory, whole_number
from optarena.functions.base import TestFunction, as_points
from optarena.functions.stochastic import NoisyGradient
from optarena.optim.schedule_free import ScheduleFreeModes
from optarena.registry import lookup

DIVERGED = 1e12
"""A run whose coordinates exceed this magnitude (or stop being finite) counts as diverged."""


@dataclass
class Paths:
    """Every step of ``n`` runs of one optimizer with one configuration.

    ``points`` is ``[steps + 1, n, dim]`` (row 0: the starts), ``values`` the exact function
    values ``[steps + 1, n]``; a diverged run is frozen at ``nan`` from the step it left.
    """

    function: TestFunction
    optimizer: str
    hyperparameters: dict[str, Any]
    points: Tensor
    values: Tensor
    seed: int | None = None
    diverged_at: Tensor = field(default_factory=lambda: torch.empty(0))

    @property
    def steps(self) -> int:
        return self.points.shape[0] - 1

    @property
    def diverged(self) -> Tensor:
        """Whether each run diverged: ``[n]`` bool."""
        return self.diverged_at >= 0

    @property
    def final_points(self) -> Tensor:
        return self.points[-1]

    @property
    def final_gap(self) -> Tensor:
        """``f - min_value`` after the last step (``inf`` for diverged runs): ``[n]``."""
        gap = self.values[-1] - self.function.min_value
        return torch.where(self.diverged | ~torch.isfinite(gap), torch.full_like(gap, math.inf), gap)

    @property
    def final_distance(self) -> Tensor:
        """Distance to the nearest global minimum after the last step (``inf`` if diverged): ``[n]``."""
        distance = self.function.distance_to_minimum(self.points[-1])
        bad = self.diverged | ~torch.isfinite(distance)
        return torch.where(bad, torch.full_like(distance, math.inf), distance)

    def gaps(self) -> Tensor:
        """``f - min_value`` at every step: ``[steps + 1, n]`` (``nan`` after divergence)."""
        return self.values - self.function.min_value


def _elementwise(optimizer: torch.optim.Optimizer) -> bool:
    transforms = getattr(optimizer, "transforms", None)
    return transforms is not None and all(getattr(t, "elementwise", False) for t in transforms)


def run_paths(
    function: TestFunction,
    optimizer: str,
    starts: Any,
    steps: int,
    hyperparameters: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> Paths:
    """Run registry optimizer ``optimizer`` from every row of ``starts`` for ``steps`` steps.

    ``hyperparameters`` go to :func:`optarena.create`; ``seed`` restarts a
    :class:`NoisyGradient` function's noise stream first (common random numbers). Runs in
    float64. An unknown optimizer or an invalid hyperparameter raises the registry's error.
    A Schedule-Free optimizer's path is its average x, the point it evaluates; its gradients
    are taken at y, as in training.
    """
    whole_number("steps", steps, 0)
    entry = lookup(optimizer)
    settings = dict(hyperparameters or {})
    x0 = as_points(starts, function.dim, function.name).detach().to(torch.float64)
    if x0.ndim != 2:
        raise ValueError(f"starts must be [n, {function.dim}], got shape {tuple(x0.shape)}")
    if seed is not None and isinstance(function, NoisyGradient):
        function.reseed(seed)
    n = x0.shape[0]
    fits_in_memory(
        f"{steps} steps from {n} starts in {function.dim} dimensions",
        (steps + 1) * n * (function.dim + 1) * 8,
        "lower the steps or the starts",
    )

    rows = [torch.nn.Parameter(x0[i].clone()) for i in range(n)]
    opt = entry.build(rows, **settings)
    batched = _elementwise(opt)
    if batched:
        whole = torch.nn.Parameter(x0.clone())
        opt = entry.build([whole], **settings)

    def current() -> Tensor:
        return whole if batched else torch.stack(rows)

    averaged = isinstance(opt, ScheduleFreeModes)

    def evaluated() -> Tensor:
        """The point to show: Schedule-Free's average x, where gradients are taken at y."""
        if not averaged:
            return current()
        return opt.average_of(whole) if batched else torch.stack([opt.average_of(p) for p in rows])

    points = torch.empty(steps + 1, n, function.dim, dtype=torch.float64)
    points[0] = x0
    diverged_at = torch.full((n,), -1, dtype=torch.long)
    with torch.no_grad():
        for t in range(1, steps + 1):
            grad = function.gradient(current())
            if batched:
                whole.grad = grad
            else:
                for p, g in zip(rows, grad.unbind(0)):
                    p.grad = g
            opt.step()
            x = evaluated()
            points[t] = x
            bad = ~torch.isfinite(x).all(dim=-1) | (x.abs() > DIVERGED).any(dim=-1)
            newly = bad & (diverged_at < 0)
            if bool(newly.any()):
                diverged_at[newly] = t
                if bool((diverged_at >= 0).all()):
                    points[t + 1 :] = math.nan
                    break
    exact = function.exact if isinstance(function, NoisyGradient) else function
    with torch.no_grad():
        values = exact.value(points)
    step_index = torch.arange(steps + 1).unsqueeze(1)
    after = (diverged_at >= 0) & (step_index >= diverged_at.clamp(min=0))
    points = torch.where(after.unsqueeze(-1), torch.full_like(points, math.nan), points)
    values = torch.where(after, torch.full_like(values, math.nan), values)
    return Paths(function, entry.name, settings, points, values, seed, diverged_at)

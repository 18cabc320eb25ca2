"""Loss along a line and over a plane of parameter space.

- :func:`interpolate`: the loss on the segment between two parameter vectors (and beyond
  it), the 1-D picture of Goodfellow, Vinyals & Saxe 2015 (https://arxiv.org/abs/1412.6544).
- :func:`plane_surface`: the loss on a grid over any plane ``origin + x d1 + y d2``.
- :func:`random_plane`: the loss around a point along two filter-normalised random
  directions, the 2-D picture of Li et al. 2018 (https://arxiv.org/abs/1712.09913).

All of them evaluate the grid as a batch of networks (:func:`evaluate_points`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from optarena.landscape.directions import random_direction
from optarena.landscape.evaluate import Batch, LossFn, evaluate_points
from optarena.landscape.flat import parameters_vector


@dataclass(frozen=True)
class Line:
    """Losses at ``start + alpha (end - start)`` for each ``alpha``."""

    alphas: np.ndarray
    losses: np.ndarray


@dataclass(frozen=True)
class Surface:
    """Losses on a grid of a plane: ``losses[j, i]`` is at ``(xs[i], ys[j])``."""

    xs: np.ndarray
    ys: np.ndarray
    losses: np.ndarray

    def __post_init__(self) -> None:
        if self.losses.shape != (len(self.ys), len(self.xs)):
            raise ValueError(
                f"losses must be (len(ys), len(xs)) = {(len(self.ys), len(self.xs))}, got {self.losses.shape}"
            )


MAX_GRID_POINTS = 1001
"""The most points per axis of a grid: a million networks to evaluate."""


def check_grid_size(points: int, what: str = "grid", most: int | None = MAX_GRID_POINTS) -> None:
    """A ValueError unless ``points`` is a whole number from 2 to ``most`` (None: no upper bound)."""
    whole = isinstance(points, (int, np.integer)) and not isinstance(points, bool)
    if not whole or points < 2 or (most is not None and points > most):
        allowed = ">= 2" if most is None else f"from 2 to {most}"
        raise ValueError(f"{what} must be a whole number of points per axis {allowed}, got {points!r}")


def grid_coordinates(xs: Tensor, ys: Tensor) -> Tensor:
    """``(len(ys) * len(xs), 2)`` coordinates, x varying fastest (row-major over ``(y, x)``)."""
    y_grid, x_grid = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x_grid.reshape(-1), y_grid.reshape(-1)], dim=1)


def _axis(values: Sequence[float] | Tensor, like: Tensor, what: str) -> Tensor:
    axis = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    check_grid_size(axis.numel(), what)
    return axis


def plane_surface(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    origin: Tensor,
    directions: Tensor,
    xs: Sequence[float] | Tensor,
    ys: Sequence[float] | Tensor,
    *,
    chunk_size: int | None = None,
) -> Surface:
    """The loss at ``origin + x directions[0] + y directions[1]`` for every ``x`` in ``xs``, ``y`` in ``ys``."""
    if directions.dim() != 2 or directions.shape[0] != 2:
        raise ValueError(
            f"a plane needs exactly two directions, a (2, numel) matrix; got shape {tuple(directions.shape)}"
        )
    x_axis, y_axis = _axis(xs, origin, "xs"), _axis(ys, origin, "ys")
    coords = grid_coordinates(x_axis, y_axis)
    losses = evaluate_points(model, loss_fn, batch, origin, directions, coords, chunk_size=chunk_size)
    return Surface(
        x_axis.cpu().double().numpy(),
        y_axis.cpu().double().numpy(),
        losses.reshape(len(y_axis), len(x_axis)).cpu().double().numpy(),
    )


def interpolate(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    start: Tensor,
    end: Tensor,
    *,
    steps: int = 51,
    extend: tuple[float, float] = (-0.5, 1.5),
    chunk_size: int | None = None,
) -> Line:
    """The loss at ``start + alpha (end - start)`` for ``steps`` values of alpha spanning ``extend``.

    The default range reaches half the segment's length beyond either end.
    """
    check_grid_size(steps, "steps", most=None)
    low, high = extend
    if not low < high:
        raise ValueError(f"extend must be (low, high) with low < high, got {extend!r}")
    alphas = torch.linspace(low, high, steps, dtype=start.dtype, device=start.device)
    losses = evaluate_points(
        model, loss_fn, batch, start, (end - start).unsqueeze(0), alphas.unsqueeze(1), chunk_size=chunk_size
    )
    return Line(alphas.cpu().double().numpy(), losses.cpu().double().numpy())


def random_plane(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    grid: int = 41,
    span: float = 1.0,
    generator: torch.Generator | None = None,
    normalization: str = "filter",
    one_dimensional: str = "zero",
    chunk_size: int | None = None,
) -> tuple[Surface, Tensor]:
    """The loss around the model's parameters on a ``grid x grid`` square of side ``2 span``.

    The two directions are independent Gaussian directions, normalised as in
    :func:`random_direction` (random directions in many dimensions are nearly orthogonal,
    so they are not orthogonalised). Returns the surface and the ``(2, numel)`` directions.
    """
    check_grid_size(grid)
    if not span > 0:
        raise ValueError(f"span must be > 0, got {span!r}")
    center = parameters_vector(model)
    directions = torch.stack(
        [
            random_direction(model, generator=generator, normalization=normalization, one_dimensional=one_dimensional)
            for _ in range(2)
        ]
    )
    axis = torch.linspace(-span, span, grid, dtype=center.dtype)
    return plane_surface(model, loss_fn, batch, center, directions, axis, axis, chunk_size=chunk_size), directions

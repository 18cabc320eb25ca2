"""Several optimizers' paths on one loss surface.

Given runs from a common initial point (:func:`optarena.landscape.paths.train_paths`),
:func:`landscape_of_paths` picks one plane for all of them (:mod:`.projection`), projects
every checkpoint onto it, and evaluates the loss on a grid that covers all paths with a
margin, plus the loss of the plane under each projected checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from optarena.landscape.evaluate import Batch, LossFn, evaluate_points
from optarena.landscape.paths import Trajectory
from optarena.landscape.projection import Plane, endpoints_plane, pca_plane, project
from optarena.landscape.surface import Surface, check_grid_size, plane_surface

PLANES = ("pca", "endpoints")


@dataclass(frozen=True)
class PathOnPlane:
    """One optimizer's path in plane coordinates, with the plane's loss at each point."""

    name: str
    xy: np.ndarray
    """``(checkpoints, 2)``."""
    losses: np.ndarray
    """The loss of the plane at each point: the height the 3-D view draws the path at."""
    off_plane: float = 0.0
    """Distance of the final checkpoint from the plane over its distance from the plane's
    origin (0: it lies in the plane)."""


@dataclass
class PathsLandscape:
    """The plane, the loss on its grid, and each run's path in it."""

    plane: Plane
    surface: Surface
    paths: list[PathOnPlane]
    seconds: dict[str, float] = field(default_factory=dict)


def choose_plane(
    trajectories: Sequence[Trajectory],
    plane: str = "pca",
    *,
    center: str = "init",
    endpoints: tuple[str, str] | None = None,
) -> Plane:
    """``"pca"`` (centred on ``center``: ``"init"`` or ``"mean"``) or ``"endpoints"`` of two named runs
    (default: the first two)."""
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(repr(p) for p in PLANES)}; got {plane!r}")
    if plane == "pca":
        return pca_plane([run.matrix() for run in trajectories], center=center)
    by_name = {run.name: run for run in trajectories}
    names = endpoints or tuple(run.name for run in trajectories[:2])
    if len(names) != 2 or len(set(names)) != 2:
        raise ValueError(f'plane="endpoints" needs two different runs, got {list(names)}')
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(f"no run named {unknown[0]!r}; runs: {', '.join(by_name)}")
    first, second = by_name[names[0]], by_name[names[1]]
    return endpoints_plane(first.points[0], first.points[-1], second.points[-1], names)  # type: ignore[arg-type]


def grid_axes(xy: np.ndarray, points: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Two axes of ``points`` values covering all of ``xy`` with ``margin`` times its extent on each side."""
    low, high = xy.min(axis=0), xy.max(axis=0)
    extent = high - low
    if extent.max() == 0:
        extent = np.ones(2)
    extent = np.maximum(extent, 0.1 * extent.max())  # a flat path still gets a readable band
    centre = (low + high) / 2
    half = extent * (0.5 + margin)
    x_axis, y_axis = (np.linspace(centre[i] - half[i], centre[i] + half[i], points) for i in range(2))
    return x_axis, y_axis


def landscape_of_paths(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    trajectories: Sequence[Trajectory],
    *,
    grid: int = 41,
    plane: str = "pca",
    center: str = "init",
    endpoints: tuple[str, str] | None = None,
    margin: float = 0.2,
    chunk_size: int | None = None,
) -> PathsLandscape:
    """Project every run onto one plane and evaluate the loss on a ``grid x grid`` square of it.

    Args:
        model: the architecture (its parameters are not used).
        loss_fn, batch: the loss and the fixed evaluation batch.
        trajectories: runs from one initial point.
        grid: points per axis (>= 2).
        plane, center, endpoints: see :func:`choose_plane`.
        margin: room around the paths, as a fraction of their extent on each axis.
        chunk_size: networks per batched evaluation (``None``: automatic).
    """
    check_grid_size(grid)
    if not trajectories:
        raise ValueError("landscape_of_paths needs at least one trajectory")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    chosen = choose_plane(trajectories, plane, center=center, endpoints=endpoints)
    projected, off_plane = [], []
    for run in trajectories:
        points = run.matrix()
        xy, distance = project(points, chosen.origin, chosen.directions)
        reach = (points[-1] - chosen.origin).norm()
        projected.append(xy)
        off_plane.append(float(distance[-1] / reach) if reach > 0 else 0.0)
    everything = torch.cat(projected).double().numpy()
    xs, ys = grid_axes(everything, grid, margin)

    started = time.perf_counter()
    surface = plane_surface(model, loss_fn, batch, chosen.origin, chosen.directions, xs, ys, chunk_size=chunk_size)
    seconds = {"grid": time.perf_counter() - started}
    paths = []
    for run, xy, off in zip(trajectories, projected, off_plane):
        on_plane = evaluate_points(model, loss_fn, batch, chosen.origin, chosen.directions, xy, chunk_size=chunk_size)
        paths.append(PathOnPlane(run.name, xy.double().numpy(), on_plane.double().numpy(), off))
    return PathsLandscape(chosen, surface, paths, seconds)

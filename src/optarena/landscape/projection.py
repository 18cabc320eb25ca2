"""Planes through optimizer paths, and the coordinates of points in them.

An optimizer's path lives in a space of thousands of dimensions; to draw several paths on one
picture they are projected onto one plane ``origin + x d1 + y d2``. Two planes are offered:

- :func:`pca_plane` (the default): the two principal directions of all recorded checkpoints
  of all runs, as Li et al. 2018 (https://arxiv.org/abs/1712.09913, section 7) do for one
  run. Centred on the runs' common initial point by default, so that every path starts on
  the plane at a point whose loss is exactly the drawn one, and the directions are those
  that best explain how far the runs moved from it; ``center="mean"`` is classical PCA
  around the mean of all checkpoints.
- :func:`endpoints_plane`: the plane through the initial point and two runs' final points,
  on which those three points lie exactly.

Both return orthonormal directions, so distances on the picture are distances in parameter
space. Points off the plane are drawn at their orthogonal projection;
:func:`project` also returns how far off the plane each point is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

CENTERS = ("init", "mean")


def _degenerate_below(dtype: torch.dtype) -> float:
    """Relative size under which a direction is rounding error of ``dtype``, not a direction."""
    return 100 * torch.finfo(dtype).eps


@dataclass(frozen=True)
class Plane:
    """``origin + x directions[0] + y directions[1]``, with what the axes mean."""

    origin: Tensor
    directions: Tensor
    labels: tuple[str, str]
    explained: tuple[float, float] | None = None
    """The fraction of the points' squared spread around ``origin`` along each direction (PCA)."""


def _stack_points(points: Tensor | Sequence[Tensor], what: str) -> Tensor:
    stacked = torch.stack(list(points)) if not isinstance(points, Tensor) else points
    if stacked.dim() != 2:
        raise ValueError(f"{what} must be a (points, numel) matrix, got shape {tuple(stacked.shape)}")
    return stacked


def pca_directions(points: Tensor, center: Tensor, k: int = 2) -> tuple[Tensor, Tensor]:
    """The ``k`` orthonormal directions that best explain ``points - center``, and how much each does.

    The directions are the top right-singular vectors of the ``(points, numel)`` matrix of
    displacements; the second result is each one's share of the total squared displacement.
    Signs are chosen so that the points lie on the positive side on average.
    """
    points = _stack_points(points, "points")
    if center.shape != points.shape[1:]:
        raise ValueError(f"center must have shape {tuple(points.shape[1:])}, got {tuple(center.shape)}")
    if k < 1 or k > points.shape[0]:
        raise ValueError(f"k must be between 1 and the number of points ({points.shape[0]}), got {k}")
    displacements = (points - center).double()
    _, singular, vh = torch.linalg.svd(displacements, full_matrices=False)
    total = singular.square().sum()
    if total == 0 or singular[k - 1] <= singular[0] * _degenerate_below(points.dtype):
        raise ValueError(f"the points span fewer than {k} directions around the center; cannot pick {k} directions")
    directions = vh[:k]
    signs = torch.sign((displacements @ directions.T).sum(dim=0))
    directions = directions * torch.where(signs == 0, 1.0, signs).unsqueeze(1)
    return directions.to(points.dtype), (singular[:k].square() / total).to(points.dtype)


def pca_plane(trajectories: Sequence[Tensor], *, center: str | Tensor = "init") -> Plane:
    """The plane of the top two principal directions of all checkpoints of all runs.

    Args:
        trajectories: one ``(checkpoints, numel)`` matrix per run; all runs start from the
            same point (row 0).
        center: ``"init"`` (the common initial point; default), ``"mean"`` (the mean of all
            checkpoints) or a vector.
    """
    runs = [_stack_points(t, "each trajectory") for t in trajectories]
    if not runs:
        raise ValueError("pca_plane needs at least one trajectory")
    points = torch.cat(runs)
    if isinstance(center, str):
        if center not in CENTERS:
            raise ValueError(f"center must be one of {', '.join(repr(c) for c in CENTERS)} or a vector; got {center!r}")
        starts = torch.stack([run[0] for run in runs])
        if center == "init" and not torch.allclose(starts, starts[0].expand_as(starts)):
            raise ValueError('center="init" needs every trajectory to start from the same point')
        origin = runs[0][0].clone() if center == "init" else points.mean(dim=0)
    else:
        origin = center
    directions, explained = pca_directions(points, origin, 2)
    # Orient the axes so that the runs move towards +x and +y on the whole.
    movement = sum(run[-1] - run[0] for run in runs)
    signs = torch.sign(directions @ movement)
    directions = directions * torch.where(signs == 0, 1.0, signs).unsqueeze(1)
    shares = tuple(float(e) for e in explained)
    labels = (f"PC1 ({shares[0]:.0%})", f"PC2 ({shares[1]:.0%})")
    return Plane(origin, directions, labels, shares)  # type: ignore[arg-type]


def endpoints_plane(start: Tensor, end_a: Tensor, end_b: Tensor, names: tuple[str, str] = ("a", "b")) -> Plane:
    """The plane through ``start``, ``end_a`` and ``end_b``, with orthonormal axes.

    The first axis points from ``start`` to ``end_a``; the second is the part of
    ``end_b - start`` orthogonal to it (Gram-Schmidt).
    """
    first = (end_a - start).double()
    second = (end_b - start).double()
    if first.norm() == 0:
        raise ValueError(f"the end point of {names[0]} equals the start point; no plane through them")
    first = first / first.norm()
    second = second - (second @ first) * first
    if second.norm() <= _degenerate_below(start.dtype) * (end_b - start).double().norm():
        raise ValueError(
            f"the start point and the end points of {names[0]} and {names[1]} are on one line; no plane through them"
        )
    second = second / second.norm()
    labels = (f"to {names[0]}'s end", f"to {names[1]}'s end (orthogonalised)")
    return Plane(start.clone(), torch.stack([first, second]).to(start.dtype), labels)


def project(points: Tensor, origin: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates of ``points`` in the plane (least squares), and each point's distance from it.

    Works for any independent directions, orthonormal or not: a point
    ``origin + c @ directions`` gets back exactly ``c`` and distance 0.
    """
    points = _stack_points(points, "points")
    basis = directions.double()
    displacements = (points - origin).double()
    gram = basis @ basis.T
    coords = torch.linalg.solve(gram, basis @ displacements.T).T
    residual = (displacements - coords @ basis).norm(dim=1)
    return coords.to(points.dtype), residual.to(points.dtype)

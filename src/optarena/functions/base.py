"""The test-function protocol: an analytic objective with known minima and a plotting box.

A :class:`TestFunction` maps points ``x[..., dim]`` to values ``[...]`` (batched over any
leading dimensions), knows its global minima and minimum value, a box to draw it in, a
default start and a region to draw tuning starts from. Subclasses write :meth:`value` and,
for speed, a closed-form :meth:`gradient` (the default differentiates :meth:`value` with
autograd; the tests check every closed form against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from optarena.checks import whole_number

Box = tuple[tuple[float, float], ...]
Point = tuple[float, ...]


def as_points(x: Any, dim: int, name: str) -> Tensor:
    """``x`` as a floating tensor whose last dimension is ``dim``; a ValueError otherwise."""
    tensor = x if isinstance(x, Tensor) else torch.as_tensor(x, dtype=torch.get_default_dtype())
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    if tensor.ndim == 0 or tensor.shape[-1] != dim:
        raise ValueError(
            f"{name} takes points with last dimension {dim} (x[..., {dim}]), got shape {tuple(tensor.shape)}"
        )
    return tensor


class TestFunction:
    """An analytic objective on R^dim with known global minima.

    Attributes every function has:

    - ``name``: its registry name; ``description``: one line; ``formula``: the definition.
    - ``dim``: the number of coordinates.
    - ``minima``: the global minimisers (a list of points); ``min_value``: the minimum.
    - ``bounds``: the box ``((low, high), ...)`` pictures are drawn in.
    - ``start``: the default start point (the common start of trajectory pictures).
    - ``start_region``: the box tuning starts are drawn from (``sample_starts``).
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str = ""
    description: str = ""
    formula: str = ""
    dim: int = 2
    minima: list[Point]
    min_value: float = 0.0
    bounds: Box
    start: Point
    start_region: Box

    # -- what subclasses write --------------------------------------------------------------

    def value(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        """The function at points ``x[..., dim]``: a tensor of shape ``[...]``."""
        raise NotImplementedError

    def gradient(self, x: Tensor) -> Tensor:
        """The gradient at points ``x[..., dim]`` (autograd of :meth:`value` unless overridden)."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.value(leaf).sum(), leaf)
        return grad

    # -- the public interface ---------------------------------------------------------------

    def __call__(self, x: Any) -> Tensor:
        """The value at ``x[..., dim]`` (differentiable with autograd); shape ``[...]``."""
        return self.value(as_points(x, self.dim, self.name))

    def grad(self, x: Any) -> Tensor:
        """The gradient at ``x[..., dim]``; shape ``[..., dim]``."""
        return self.gradient(as_points(x, self.dim, self.name).detach())

    def gap(self, x: Any) -> Tensor:
        """``f(x) - min_value``: how far above the minimum the value is."""
        with torch.no_grad():
            return self(x) - self.min_value

    def minima_tensor(self, like: Tensor | None = None) -> Tensor:
        """The minima as a tensor ``[n_minima, dim]`` (dtype and device of ``like``)."""
        points = torch.tensor(self.minima, dtype=torch.float64)
        return points if like is None else points.to(dtype=like.dtype, device=like.device)

    def distance_to_minimum(self, x: Any) -> Tensor:
        """Euclidean distance from each point of ``x[..., dim]`` to the nearest global minimum."""
        points = as_points(x, self.dim, self.name).detach()
        minima = self.minima_tensor(points)
        return torch.linalg.vector_norm(points.unsqueeze(-2) - minima, dim=-1).amin(dim=-1)

    def nearest_minimum(self, x: Any) -> Tensor:
        """The global minimum nearest to each point: shape ``[..., dim]``."""
        points = as_points(x, self.dim, self.name).detach()
        minima = self.minima_tensor(points)
        index = torch.linalg.vector_norm(points.unsqueeze(-2) - minima, dim=-1).argmin(dim=-1)
        return minima[index]

    def sample_starts(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """``n`` start points drawn uniformly from ``start_region``: shape ``[n, dim]``."""
        whole_number("the number of start points", n)
        dtype = dtype or torch.get_default_dtype()
        low = torch.tensor([b[0] for b in self.start_region], dtype=dtype)
        high = torch.tensor([b[1] for b in self.start_region], dtype=dtype)
        return low + (high - low) * torch.rand(n, self.dim, generator=generator, dtype=dtype)

    def start_tensor(self, dtype: torch.dtype | None = None) -> Tensor:
        """The default start as a tensor ``[dim]``."""
        return torch.tensor(self.start, dtype=dtype or torch.get_default_dtype())

    def grid(self, resolution: int = 200, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
        """``(X, Y, Z)`` over ``bounds`` for contour and surface plots (2-D functions only)."""
        if self.dim != 2:
            raise ValueError(f"{self.name} has {self.dim} dimensions; only 2-D functions can be drawn")
        (x0, x1), (y0, y1) = self.bounds
        xs = torch.linspace(x0, x1, resolution, dtype=dtype)
        ys = torch.linspace(y0, y1, resolution, dtype=dtype)
        X, Y = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            Z = self.value(torch.stack([X, Y], dim=-1))
        return X, Y, Z

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def check_box(box: Sequence[Sequence[float]], dim: int, what: str) -> Box:
    """A validated box of ``dim`` intervals ``(low, high)`` with ``low < high``."""
    box = tuple((float(low), float(high)) for low, high in box)
    if len(box) != dim or any(not low < high for low, high in box):
        raise ValueError(f"{what} must be {dim} intervals (low, high) with low < high, got {box!r}")
    return box

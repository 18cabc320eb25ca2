"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019).

For a unit probe ``q``, ``m`` Lanczos steps give a tridiagonal ``T`` whose eigenvalues
``theta_i`` (nodes) and squared first eigenvector components ``tau_i`` (weights) form the
Gauss quadrature of the spectral measure ``sum_j (u_j . q)^2 delta(t - lambda_j)``: exact for
polynomials of degree up to ``2m - 1``. For a random sign probe scaled to unit length, that
measure's expectation is the eigenvalue density ``(1/n) sum_j delta(t - lambda_j)``. Each
delta is broadened into a Gaussian of width ``sigma`` and the probes averaged:

    phi(t) = (1 / probes) sum_l sum_i tau_li exp(-(t - theta_li)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))

Ghorbani, Krishnan & Xiao 2019, An Investigation into Neural Net Optimization via Hessian
Eigenvalue Density, https://arxiv.org/abs/1901.10159 (as in PyHessian, Yao et al. 2020,
https://arxiv.org/abs/1912.07145).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor, nn

from optarena.checks import finite_number, whole_number
from optarena.diagnostics.krylov import lanczos_tridiagonal
from optarena.diagnostics.operator import Batch, HessianOperator, LossFn
from optarena.diagnostics.trace import rademacher

DEFAULT_STEPS = 100
DEFAULT_GRID = 1000
RELATIVE_SIGMA = 0.005
"""The default ``sigma``: this fraction of the spread of all the nodes."""
MARGIN_SIGMAS = 5.0
"""The default grid reaches this many ``sigma`` beyond the outermost nodes."""


@dataclass(frozen=True)
class SpectralDensity:
    """The broadened eigenvalue density on a grid, and the quadrature it was made from."""

    grid: Tensor
    """Points where the density is evaluated (float64)."""
    density: Tensor
    """The density at each grid point (float64); integrates to about 1 over a wide grid."""
    nodes: list[Tensor]
    """Per probe: the Ritz values (float64), ascending."""
    weights: list[Tensor]
    """Per probe: their quadrature weights (float64), summing to 1."""
    sigma: float
    """The Gaussian broadening's standard deviation."""


def quadrature(alphas, betas) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the Gauss quadrature of one Lanczos tridiagonal."""
    theta, vectors = eigh_tridiagonal(alphas, betas)
    return torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(vectors[0] ** 2, dtype=torch.float64)


def broadened_density(nodes: Sequence[Tensor], weights: Sequence[Tensor], grid: Tensor, sigma: float) -> Tensor:
    """``(1/L) sum_l sum_i w_li N(t; theta_li, sigma^2)`` at each grid point ``t`` (float64)."""
    finite_number("sigma", sigma, strict=True)
    grid = torch.as_tensor(grid, dtype=torch.float64)
    total = torch.zeros_like(grid)
    for theta, weight in zip(nodes, weights):
        gaps = (grid[:, None] - theta.double()[None, :]) / sigma
        total += (torch.exp(-0.5 * gaps**2) * weight.double()[None, :]).sum(dim=1)
    return total / (len(nodes) * sigma * math.sqrt(2 * math.pi))


def _grid(grid: int | Tensor | Sequence[float], nodes: list[Tensor], sigma: float) -> Tensor:
    if isinstance(grid, int) and not isinstance(grid, bool):
        whole_number("grid", grid, 2)
        low = min(float(t.min()) for t in nodes) - MARGIN_SIGMAS * sigma
        high = max(float(t.max()) for t in nodes) + MARGIN_SIGMAS * sigma
        return torch.linspace(low, high, grid, dtype=torch.float64)
    points = torch.as_tensor(grid, dtype=torch.float64)
    if points.dim() != 1 or points.numel() == 0:
        raise ValueError(
            f"grid must be a number of points or a 1-D sequence of points, got shape {tuple(points.shape)}"
        )
    return points


def spectral_density(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    steps: int = DEFAULT_STEPS,
    probes: int = 1,
    grid: int | Tensor | Sequence[float] = DEFAULT_GRID,
    sigma: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> SpectralDensity:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature.

    Args:
        steps: Lanczos steps per probe (at most the number of parameters), each one
            Hessian-vector product and one stored vector per probe. Default 100.
        probes: random sign probes averaged; their Lanczos runs advance together, in
            batches of ``chunk_size``. Default 1.
        grid: the number of evenly spaced points from the smallest to the largest node,
            widened by 5 ``sigma`` each side (default 1000), or the points themselves.
        sigma: the Gaussian broadening; default 0.5% of the nodes' spread.
        seed: seeds the probes.
        chunk_size: probes per batched product; None sizes it from the batch and the model.
    """
    whole_number("steps", steps)
    whole_number("probes", probes)
    operator = HessianOperator(model, loss_fn, batch, chunk_size=chunk_size)
    generator = torch.Generator().manual_seed(int(seed))
    nodes, weights = [], []
    for first in range(0, probes, operator.chunk_size):
        starts = rademacher(
            min(operator.chunk_size, probes - first), operator.numel, generator, operator.dtype, operator.device
        )
        for alphas, betas in lanczos_tridiagonal(operator, starts, steps):
            theta, tau = quadrature(alphas, betas)
            nodes.append(theta)
            weights.append(tau)
    if sigma is None:
        spread = max(float(t.max()) for t in nodes) - min(float(t.min()) for t in nodes)
        sigma = RELATIVE_SIGMA * spread if spread > 0 else max(abs(float(nodes[0][0])), 1.0) * RELATIVE_SIGMA
    sigma = finite_number("sigma", sigma, strict=True)
    points = _grid(grid, nodes, sigma)
    return SpectralDensity(points, broadened_density(nodes, weights, points, sigma), nodes, weights, sigma)

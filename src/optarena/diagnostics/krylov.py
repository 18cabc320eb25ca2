"""Eigenvalues of a symmetric operator known only through products: Lanczos and power iteration.

The operator is any ``apply(vectors) -> products`` on ``(m, n)`` batches of flat vectors
(:class:`~optarena.diagnostics.operator.HessianOperator` is one). Small dense problems (the
tridiagonal matrices, the Rayleigh-Ritz matrices) are solved in float64 with scipy and torch.

- :func:`lanczos_top`: the Lanczos process with full reorthogonalisation (Gram-Schmidt
  twice against every earlier vector), stopped when the top ``k`` Ritz values' residuals are
  small; converges to the algebraically largest eigenvalues. Memory: one vector per step.
- :func:`power_top`: block power iteration (orthogonal iteration with Rayleigh-Ritz), the
  batched form of power iteration with deflation: ``k`` vectors per product call; converges
  to the ``k`` eigenvalues of largest magnitude, as PyHessian's power iteration does.
- :func:`lanczos_tridiagonal`: several independent Lanczos runs advanced together (one
  batched product per step), for stochastic Lanczos quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor

Apply = Callable[[Tensor], Tensor]

BREAKDOWN = 64.0
"""A Lanczos step breaks down (the Krylov space is invariant) when the new vector's norm is
below this many machine epsilons times the largest tridiagonal entry seen."""


@dataclass(frozen=True)
class EigenResult:
    """Top eigenvalues of a symmetric operator, their vectors and how they were found."""

    eigenvalues: Tensor
    """``(k,)`` float64 on the CPU, in descending order."""
    eigenvectors: Tensor
    """``(k, n)`` unit vectors in the operator's dtype and device, in the same order."""
    residuals: Tensor
    """``(k,)`` float64: ``||A u - theta u||`` for each pair (Lanczos: its standard estimate)."""
    steps: int
    """Lanczos steps, or power iterations."""
    converged: bool
    """Every residual is within ``tol`` times the largest Ritz value's magnitude."""


def _orthogonalise(vectors: Tensor, basis: Tensor) -> Tensor:
    """``vectors`` (``(n,)`` or ``(m, n)``) minus their projection on the rows of ``basis``; Gram-Schmidt twice."""
    if basis.shape[0] == 0:
        return vectors
    for _ in range(2):
        vectors = vectors - (vectors @ basis.T) @ basis
    return vectors


def _unit(vector: Tensor) -> Tensor:
    norm = torch.linalg.vector_norm(vector)
    if not norm > 0:
        raise ValueError("the start vector must be nonzero")
    return vector / norm


def _check_count(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be a whole number between 1 and the operator's size {n}, got {k!r}")


def lanczos_top(
    apply: Apply,
    n: int,
    k: int = 1,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    start: Tensor | None = None,
    tol: float = 1e-6,
    max_steps: int = 200,
    generator: torch.Generator | None = None,
) -> EigenResult:
    """The ``k`` algebraically largest eigenpairs by Lanczos with full reorthogonalisation.

    Stops when every one of the top ``k`` Ritz values has a residual ``beta_m |s_mi|`` at most
    ``tol`` times the largest Ritz value's magnitude (its eigenvalue error is then about the
    residual squared over the gap to the next one), or after ``min(max_steps, n)`` steps.
    When the Krylov space becomes invariant before ``k`` Ritz values exist (a start vector in
    a sum of few eigenspaces), it continues from a fresh random vector orthogonal to all
    before. Like any single-vector Krylov method it sees one copy of a repeated eigenvalue.

    ``start``: the first vector (e.g. the previous measurement's top eigenvector); random
    Gaussian from ``generator`` when None.
    """
    _check_count(k, n)
    steps_allowed = min(int(max_steps), n)
    if steps_allowed < k:
        raise ValueError(f"max_steps must be at least k = {k}, got {max_steps}")
    if start is None:
        start = torch.randn(n, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    q = _unit(start.to(dtype=dtype, device=device).reshape(n))
    tiny = BREAKDOWN * torch.finfo(dtype).eps
    basis = torch.empty(min(steps_allowed, 32), n, dtype=dtype, device=device)
    alphas: list[float] = []
    betas: list[float] = []
    scale = 0.0
    while True:
        m = len(alphas)
        if m == basis.shape[0]:
            basis = torch.cat([basis, torch.empty(min(m, steps_allowed - m), n, dtype=dtype, device=device)])
        basis[m] = q
        w = apply(q.unsqueeze(0))[0]
        alpha = float(w @ q)
        w = w - alpha * q
        if m > 0:
            w = w - betas[-1] * basis[m - 1]
        w = _orthogonalise(w, basis[: m + 1])
        beta = float(torch.linalg.vector_norm(w))
        alphas.append(alpha)
        m += 1
        scale = max(scale, abs(alpha) + beta + (betas[-1] if betas else 0.0))
        theta, vectors = eigh_tridiagonal(np.array(alphas), np.array(betas))
        order = np.argsort(theta)[::-1][: min(k, m)]
        residuals = beta * np.abs(vectors[-1, order])
        converged = m >= k and bool(np.all(residuals <= tol * max(np.abs(theta).max(), np.finfo(float).tiny)))
        if converged or m == steps_allowed:
            break
        if beta <= tiny * scale:
            fresh = torch.randn(n, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
            fresh = _orthogonalise(fresh, basis[:m])
            norm = float(torch.linalg.vector_norm(fresh))
            if norm <= tiny * math.sqrt(n):
                break
            q, beta = fresh / norm, 0.0
        else:
            q = w / beta
        betas.append(beta)
    ritz = torch.as_tensor(vectors[:, order].T.copy(), dtype=dtype, device=device)
    eigenvectors = ritz @ basis[:m]
    return EigenResult(
        eigenvalues=torch.as_tensor(theta[order].copy(), dtype=torch.float64),
        eigenvectors=eigenvectors,
        residuals=torch.as_tensor(residuals, dtype=torch.float64),
        steps=m,
        converged=converged,
    )


def _orthonormal_rows(vectors: Tensor) -> Tensor:
    q, _ = torch.linalg.qr(vectors.T)
    return q.T


def power_top(
    apply: Apply,
    n: int,
    k: int = 1,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    start: Tensor | None = None,
    tol: float = 1e-6,
    max_steps: int = 200,
    generator: torch.Generator | None = None,
) -> EigenResult:
    """The ``k`` eigenpairs of largest magnitude by block power iteration, returned in descending order.

    Each iteration multiplies ``k`` orthonormal vectors by the operator in one batched call,
    takes the Ritz pairs of their span (Rayleigh-Ritz), and stops when every pair's residual
    ``||A u - theta u||`` is at most ``tol`` times the largest magnitude; otherwise the next
    block is the orthonormalised products. The ``i``-th vector converges at the rate
    ``|lambda_{k+1} / lambda_i|`` per iteration. ``start``: ``(k, n)`` initial vectors.
    """
    _check_count(k, n)
    if start is None:
        start = torch.randn(k, n, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
    start = start.to(dtype=dtype, device=device).reshape(k, n)
    block = _orthonormal_rows(start)
    steps = 0
    converged = False
    while True:
        products = apply(block)
        steps += 1
        small = (block @ products.T).double().cpu()
        theta, coefficients = torch.linalg.eigh((small + small.T) / 2)
        order = torch.argsort(theta.abs(), descending=True)
        theta, coefficients = theta[order], coefficients[:, order]
        mixing = coefficients.T.to(dtype=dtype, device=device)
        ritz, images = mixing @ block, mixing @ products
        residuals = torch.linalg.vector_norm(images - theta.to(dtype=dtype, device=device)[:, None] * ritz, dim=1)
        residuals = residuals.double().cpu()
        converged = bool(torch.all(residuals <= tol * max(float(theta.abs().max()), np.finfo(float).tiny)))
        if converged or steps >= max_steps:
            break
        block = _orthonormal_rows(images)
    descending = torch.argsort(theta, descending=True)
    return EigenResult(theta[descending], ritz[descending.to(device)], residuals[descending], steps, converged)


def lanczos_tridiagonal(apply: Apply, starts: Tensor, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run ``steps`` Lanczos steps from each row of ``starts`` together; the tridiagonal of each run.

    One batched product per step for all runs still going; full reorthogonalisation within
    each run. A run whose Krylov space becomes invariant stops there (its tridiagonal is
    then shorter, and exact). Returns ``(alphas, betas)`` per run, float64 numpy arrays of
    lengths ``m`` and ``m - 1``.
    """
    runs, n = starts.shape
    steps = min(int(steps), n)
    dtype, device = starts.dtype, starts.device
    tiny = BREAKDOWN * torch.finfo(dtype).eps
    norms = torch.linalg.vector_norm(starts, dim=1, keepdim=True)
    if not bool(torch.all(norms > 0)):
        raise ValueError("every start vector must be nonzero")
    basis = torch.empty(steps, runs, n, dtype=dtype, device=device)
    q = starts / norms
    alphas = torch.zeros(runs, steps, dtype=torch.float64)
    betas = torch.zeros(runs, steps, dtype=torch.float64)
    lengths = [steps] * runs
    active = torch.arange(runs, device=device)
    scale = torch.zeros(runs, dtype=torch.float64)
    for j in range(steps):
        basis[j, active] = q
        w = apply(q)
        alpha = (w * q).sum(dim=1)
        w = w - alpha[:, None] * q
        if j > 0:
            w = w - betas[active.cpu(), j - 1].to(dtype=dtype, device=device)[:, None] * basis[j - 1, active]
        previous = basis[: j + 1, active].transpose(0, 1)  # (active, j + 1, n)
        for _ in range(2):
            w = w - torch.einsum("rj,rjn->rn", torch.einsum("rjn,rn->rj", previous, w), previous)
        beta = torch.linalg.vector_norm(w, dim=1)
        index = active.cpu()
        alphas[index, j] = alpha.double().cpu()
        betas[index, j] = beta.double().cpu()
        scale[index] = torch.maximum(
            scale[index], alphas[index, j].abs() + betas[index, j] + (betas[index, j - 1] if j else 0)
        )
        if j == steps - 1:
            break
        going = betas[index, j] > tiny * scale[index]
        for run in index[~going].tolist():
            lengths[run] = j + 1
        if not bool(going.any()):
            break
        keep = going.to(device)
        active, q = active[keep], (w[keep] / beta[keep, None])
    return [(alphas[r, : lengths[r]].numpy(), betas[r, : lengths[r] - 1].numpy()) for r in range(runs)]

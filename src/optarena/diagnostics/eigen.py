"""The Hessian's top eigenvalues: ``hessian_eigenvalues`` and ``hessian_eigenpairs``."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from optarena.checks import finite_number, whole_number
from optarena.diagnostics.krylov import EigenResult, lanczos_top, power_top
from optarena.diagnostics.operator import Batch, HessianOperator, LossFn

METHODS = ("lanczos", "power")
DEFAULT_TOL = 1e-6
DEFAULT_MAX_STEPS = 200


def top_eigenpairs(
    operator,
    k: int = 1,
    *,
    method: str = "lanczos",
    tol: float = DEFAULT_TOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    start: Tensor | None = None,
    seed: int = 0,
    warn: bool = True,
) -> EigenResult:
    """The top ``k`` eigenpairs of a symmetric ``operator`` with ``numel``, ``dtype`` and ``device``
    attributes (a :class:`HessianOperator` or a preconditioned one); see :func:`hessian_eigenpairs`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    finite_number("tol", tol, strict=True)
    whole_number("max_steps", max_steps)
    generator = torch.Generator().manual_seed(int(seed))
    solve = lanczos_top if method == "lanczos" else power_top
    result = solve(
        operator,
        operator.numel,
        k,
        dtype=operator.dtype,
        device=operator.device,
        start=start,
        tol=tol,
        max_steps=max_steps,
        generator=generator,
    )
    if warn and not result.converged:
        warnings.warn(
            f"{method} stopped after {result.steps} steps with residuals up to {float(result.residuals.max()):.3g} "
            f"(tol {tol:g} times the largest eigenvalue); raise max_steps for more accurate eigenvalues",
            RuntimeWarning,
            stacklevel=3,
        )
    return result


def hessian_eigenpairs(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    k: int = 1,
    *,
    method: str = "lanczos",
    tol: float = DEFAULT_TOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    start: Tensor | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> EigenResult:
    """The top ``k`` eigenvalues of the loss's Hessian with their eigenvectors and convergence record.

    Args:
        model, loss_fn, batch: the loss ``loss_fn(model(inputs), targets)`` on ``batch =
            (inputs, targets)``, with the model in the mode given (see
            :class:`~optarena.diagnostics.operator.HessianOperator`).
        k: how many eigenvalues.
        method: ``"lanczos"`` (default; the ``k`` algebraically largest, Lanczos with full
            reorthogonalisation) or ``"power"`` (block power iteration: the ``k`` largest in
            magnitude, which are the top ``k`` whenever the spectrum's positive end dominates
            its negative end, as it does for trained networks).
        tol: stop when every residual ``||H u - theta u||`` is at most ``tol`` times the
            largest eigenvalue's magnitude (default 1e-6).
        max_steps: at most this many Lanczos steps (each one Hessian-vector product and one
            stored vector) or power iterations (``k`` products each). Default 200.
        start: an initial vector ``(numel,)`` (Lanczos) or block ``(k, numel)`` (power);
            random from ``seed`` when None.
        seed: seeds the random start vector.
        chunk_size: Hessian-vector products per batched call (power iteration batches its
            ``k`` vectors); None sizes it from the batch and the model.

    Warns (RuntimeWarning) when ``max_steps`` ends the search before ``tol`` is met.
    """
    operator = HessianOperator(model, loss_fn, batch, chunk_size=chunk_size)
    return top_eigenpairs(operator, k, method=method, tol=tol, max_steps=max_steps, start=start, seed=seed)


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    k: int = 1,
    *,
    method: str = "lanczos",
    tol: float = DEFAULT_TOL,
    max_steps: int = DEFAULT_MAX_STEPS,
    seed: int = 0,
    chunk_size: int | None = None,
) -> Tensor:
    """The top ``k`` eigenvalues of the Hessian of ``loss_fn(model(inputs), targets)``, descending.

    ``batch = (inputs, targets)``. Returns a float64 CPU tensor of shape ``(k,)``; the
    arguments are those of :func:`hessian_eigenpairs`. ``k=1`` gives the sharpness.

    >>> hessian_eigenvalues(model, torch.nn.functional.cross_entropy, (x, y), k=3)  # doctest: +SKIP
    tensor([41.2, 17.9, 12.3], dtype=torch.float64)
    """
    return hessian_eigenpairs(
        model, loss_fn, batch, k, method=method, tol=tol, max_steps=max_steps, seed=seed, chunk_size=chunk_size
    ).eigenvalues

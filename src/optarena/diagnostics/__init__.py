"""Curvature of a model's loss: Hessian-vector products, top eigenvalues, trace, spectral density.

    from optarena.diagnostics import hessian_eigenvalues, hessian_trace, spectral_density
    top = hessian_eigenvalues(model, torch.nn.functional.cross_entropy, (inputs, targets), k=3)
    edge = preconditioned_sharpness(model, loss_fn, batch, adam)   # compare with stability_threshold(adam)

Everything is matrix-free: the Hessian is only touched through Hessian-vector products
(forward-over-reverse with torch.func, batched with vmap in memory-bounded chunks). The
model's parameters, gradients, buffers and mode are left as they were. See docs/diagnostics.md.
"""

from optarena.diagnostics.density import SpectralDensity, broadened_density, spectral_density
from optarena.diagnostics.eigen import hessian_eigenpairs, hessian_eigenvalues
from optarena.diagnostics.krylov import EigenResult
from optarena.diagnostics.operator import HessianOperator, hessian_vector_product
from optarena.diagnostics.preconditioned import (
    diagonal_preconditioner,
    preconditioned_eigenpairs,
    preconditioned_sharpness,
    stability_threshold,
)
from optarena.diagnostics.trace import TraceEstimate, hessian_trace

__all__ = [
    "EigenResult",
    "HessianOperator",
    "SpectralDensity",
    "TraceEstimate",
    "broadened_density",
    "diagonal_preconditioner",
    "hessian_eigenpairs",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
    "preconditioned_eigenpairs",
    "preconditioned_sharpness",
    "spectral_density",
    "stability_threshold",
]

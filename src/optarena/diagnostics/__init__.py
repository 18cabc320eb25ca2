"""Curvature of a model's loss: Hessian-vector products, top eigenvalues, trace, spectral density.

    from optarena.diagnostics import hessian_eigenvalues, hessian_trace, spectral_density
    top = hessian_eigenvalues(model, torch.nn.functional.cross_entropy, (inputs, targets), k=3)

Everything is matrix-free: the Hessian is only touched through Hessian-vector products
(forward-over-reverse with torch.func, batched with vmap in memory-bounded chunks). The
model's parameters, gradients, buffers and mode are left as they were. See docs/diagnostics.md.
"""

from optarena.diagnostics.density import SpectralDensity, broadened_density, spectral_density
from optarena.diagnostics.eigen import hessian_eigenpairs, hessian_eigenvalues
from optarena.diagnostics.krylov import EigenResult
from optarena.diagnostics.operator import HessianOperator, hessian_vector_product
from optarena.diagnostics.trace import TraceEstimate, hessian_trace

__all__ = [
    "EigenResult",
    "HessianOperator",
    "SpectralDensity",
    "TraceEstimate",
    "broadened_density",
    "hessian_eigenpairs",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
    "spectral_density",
]

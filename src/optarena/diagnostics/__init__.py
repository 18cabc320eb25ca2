"""Curvature of a model's loss: Hessian-vector products, top eigenvalues, trace, spectral density.

    from optarena.diagnostics import hessian_eigenvalues, hessian_trace, spectral_density
    top = hessian_eigenvalues(model, torch.nn.functional.cross_entropy, (inputs, targets), k=3)
    edge = preconditioned_sharpness(model, loss_fn, batch, adam)   # compare with stability_threshold(adam)

Everything is matrix-free: the Hessian is only touched through Hessian-vector products
(forward-over-reverse with torch.func, batched with vmap in memory-bounded chunks). The
model's parameters, gradients, buffers and mode are left as they were. See docs/diagnostics.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "EigenResult": "krylov",
    "HessianOperator": "operator",
    "SpectralDensity": "density",
    "TraceEstimate": "trace",
    "broadened_density": "density",
    "diagonal_preconditioner": "preconditioned",
    "hessian_eigenpairs": "eigen",
    "hessian_eigenvalues": "eigen",
    "hessian_trace": "trace",
    "hessian_vector_product": "operator",
    "preconditioned_eigenpairs": "preconditioned",
    "preconditioned_sharpness": "preconditioned",
    "spectral_density": "density",
    "stability_threshold": "preconditioned",
}
"""Each public name and the module it lives in; imported on first use, so that the
``optarena`` command line does not load torch.func and scipy.linalg for other commands."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

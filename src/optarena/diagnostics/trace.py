"""The Hessian's trace: Hutchinson's estimator with Rademacher probes, or exactly for small models."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from optarena.checks import whole_number
from optarena.diagnostics.operator import Batch, HessianOperator, LossFn


@dataclass(frozen=True)
class TraceEstimate:
    """``tr H`` estimated as the mean of ``z^T H z`` over probes ``z``, with its standard error."""

    value: float
    standard_error: float
    """The sample standard deviation of the probes' ``z^T H z`` over the square root of their
    number (0 when exact)."""
    probes: int
    """Probe vectors used (the number of parameters when exact)."""
    samples: Tensor
    """Each probe's ``z^T H z`` (float64, CPU); empty when exact."""

    def __float__(self) -> float:
        return self.value


def rademacher(count: int, n: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(count, n)`` independent signs, each +1 or -1 with probability 1/2, drawn on the CPU from ``generator``."""
    signs = torch.randint(0, 2, (count, n), generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=dtype, device=device)


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    *,
    probes: int = 100,
    exact: bool = False,
    seed: int = 0,
    chunk_size: int | None = None,
) -> TraceEstimate:
    """The trace of the Hessian of ``loss_fn(model(inputs), targets)``.

    Hutchinson's estimator: ``tr H = E[z^T H z]`` for ``z`` of independent random signs, whose
    variance per probe is ``2 (||H||_F^2 - sum_i H_ii^2)``; the mean over ``probes`` probes
    comes with its standard error. The probes go through the Hessian-vector product in
    batches of ``chunk_size``.

    ``exact=True`` sums the diagonal instead, one unit vector per parameter (``numel``
    products): for small models, and to check the estimator.
    """
    operator = HessianOperator(model, loss_fn, batch, chunk_size=chunk_size)
    n, dtype, device = operator.numel, operator.dtype, operator.device
    if exact:
        total = 0.0
        for first in range(0, n, operator.chunk_size):
            rows = torch.arange(first, min(n, first + operator.chunk_size), device=device)
            units = torch.zeros(len(rows), n, dtype=dtype, device=device)
            units[torch.arange(len(rows), device=device), rows] = 1
            total += float(operator(units)[torch.arange(len(rows), device=device), rows].double().sum())
        return TraceEstimate(total, 0.0, n, torch.empty(0, dtype=torch.float64))
    whole_number("probes", probes, 2)
    generator = torch.Generator().manual_seed(int(seed))
    samples = []
    for first in range(0, probes, operator.chunk_size):
        z = rademacher(min(operator.chunk_size, probes - first), n, generator, dtype, device)
        samples.append((z * operator(z)).sum(dim=1).double().cpu())
    values = torch.cat(samples)
    return TraceEstimate(float(values.mean()), float(values.std()) / math.sqrt(probes), probes, values)

"""Updates of the rows a sparse gradient holds, with the dense path's state and precision rules.

An ``nn.Embedding(sparse=True)`` gives a sparse COO gradient that names a few rows. The
optimizers that take such gradients (LazyAdam, SGD, Adagrad) update only those rows, and keep
the same state as their dense path, so dense and sparse steps may alternate on one parameter:
bf16/fp16 parameters keep float32 state (``state_dtype``), their math runs in float32, and the
new value reaches the parameter through its rounding remainder (``param_remainder``), so
updates below the parameter's precision accumulate instead of vanishing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor

from optarena.optim.execution import REMAINDER, state_dtype_for
from optarena.transforms.base import scalar_dtype


def gradient_of(param: Tensor) -> Tensor:
    """The gradient of a parameter the step visits (those without one are skipped before)."""
    return cast(Tensor, param.grad)


def refuse_complex(owner: str, param: Tensor) -> None:
    if param.is_complex():
        raise RuntimeError(
            f"{owner}: sparse gradients of complex parameters are not supported; "
            "use dense gradients, or real parameters"
        )


def coalesced_rows(grad: Tensor, maximize: bool) -> tuple[tuple[Tensor, ...], Tensor]:
    """The indices and values of ``grad`` with duplicate indices summed (negated to maximise)."""
    grad = grad.coalesce()
    values = grad._values()
    return tuple(grad._indices()), (-values if maximize else values)


def math_dtype(param: Tensor, group: dict[str, Any]) -> torch.dtype:
    """float32 for bf16/fp16 parameters (whatever ``state_dtype``), else the parameter's dtype."""
    return param.dtype if state_dtype_for(group, param.dtype) is None else torch.float32


def state_like(param: Tensor, group: dict[str, Any], fill: float = 0.0) -> Tensor:
    """A state tensor shaped like ``param``, in the dense path's state dtype, filled with ``fill``."""
    dtype = state_dtype_for(group, param.dtype) or param.dtype
    return torch.full_like(param, fill, dtype=dtype, memory_format=torch.preserve_format)


def ensure_step(state: dict[str, Any]) -> Tensor:
    """The parameter's ``step`` counter, created at 0 as the dense path does, then advanced by one."""
    if "step" not in state:
        state["step"] = torch.tensor(0.0, dtype=scalar_dtype())
    state["step"] += 1
    step: Tensor = state["step"]
    return step


def add_to_rows(
    param: Tensor, state: dict[str, Any], group: dict[str, Any], rows: tuple[Tensor, ...], change: Tensor
) -> None:
    """``param[rows] += change``; for bf16/fp16 through the rounding remainder, as the dense path."""
    if state_dtype_for(group, param.dtype) is None:
        param.index_put_(rows, change.to(param.dtype), accumulate=True)
        return
    if REMAINDER not in state:
        state[REMAINDER] = state_like(param, group)
    remainder = state[REMAINDER]
    exact = param[rows].float() + remainder[rows].float() + change.float()
    stored = exact.to(param.dtype)
    param.index_put_(rows, stored)
    remainder.index_put_(rows, (exact - stored.float()).to(remainder.dtype))


@contextlib.contextmanager
def dense_gradients(params: Sequence[Tensor]) -> Iterator[None]:
    """Within the block, each parameter's sparse gradient is replaced by its dense copy.

    For updates that touch every row anyway (weight decay, a momentum buffer), so the dense
    path runs them; the sparse gradients are put back afterwards, also on error.
    """
    saved = [p.grad for p in params]
    try:
        for p in params:
            p.grad = gradient_of(p).to_dense()
        yield
    finally:
        for p, grad in zip(params, saved):
            p.grad = grad

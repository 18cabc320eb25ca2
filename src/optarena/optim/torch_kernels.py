"""torch's own fused kernels, for the chains that are exactly their algorithm.

torch ships fused kernels (one pass over memory, no compilation) for SGD, Adam, AdamW and
Adagrad on CPU and CUDA. Where an optarena optimizer's chain is one of these algorithms, its
bucket steps through torch's kernel instead of a compiled graph: the same numbers as
``torch.optim``'s ``fused=True``, and no compile tax on the first step. State keeps
optarena's (and torch.optim's) names and layout, created by the chain's own preparation, so a
state dict moves between this path, the eager one and the compiled one unchanged.

A kernel applies to a bucket of dense, real, float32 or float64 tensors on a device torch
has the kernel for; bf16/fp16 parameters keep optarena's float32 state and rounding
remainder, which torch's kernels do not, so they take the compiled path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optarena.transforms.base import local_view
from optarena.transforms.sharding import is_sharded, local

KERNEL_DTYPES = (torch.float32, torch.float64)


def kernel_devices() -> list[str]:
    """Device types torch has fused optimizer kernels for."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return list(_get_fused_kernels_supported_devices())
    except ImportError:  # pragma: no cover - older torch
        return ["cuda", "cpu"]


@functools.cache
def has_kernel(op: str, device_type: str) -> bool:
    """Whether this torch build registers ``aten::<op>`` for ``device_type`` (torch ships
    Adagrad's fused kernel for the CPU only, say); where torch cannot say, the device types
    of :func:`kernel_devices`."""
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", device_type.upper()))
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return device_type in kernel_devices()


@dataclass(frozen=True)
class TorchKernel:
    """One of torch's fused kernels, and how an optimizer's bucket calls it."""

    name: str
    """The kernel, as shown in plans (``torch._fused_adam_``)."""
    run: Callable[[Any], None]
    """Steps a prepared bucket (an ``execution.PreparedStep``) with the kernel."""

    def unsuitable(
        self, params: Sequence[Tensor], group: dict[str, Any], states: Sequence[dict[str, Any]] = ()
    ) -> str | None:
        """Why the kernel cannot step ``params`` with their ``states`` (None when it can). The
        kernels read memory in order whatever the strides, so every parameter, gradient and
        state tensor must be contiguous."""
        if group.get("differentiable"):
            return "differentiable=True"
        # every step asks: one pass over the tensors, the per-kind checks once per kind
        op = self.name.removeprefix("torch.")
        part = local if any(is_sharded(p) for p in params) else _itself
        kinds = set()
        for p in params:
            grad = p.grad
            if grad is not None and (grad.is_sparse or not part(grad).is_contiguous()):
                return "a sparse gradient" if grad.is_sparse else "a gradient that is not contiguous"
            if not part(p).is_contiguous():
                return "a parameter that is not contiguous"
            kinds.add((p.dtype, p.device.type))
        for dtype, device_type in kinds:
            if dtype.is_complex:
                return "complex parameters"
            if dtype not in KERNEL_DTYPES:
                return f"{dtype} parameters (optarena keeps float32 state and a rounding remainder for them)"
            if not has_kernel(op, device_type):
                return f"torch has no {self.name} for {device_type}"
        for state in states:
            for value in state.values():
                if isinstance(value, Tensor) and not part(value).is_contiguous():
                    return "a state tensor that is not contiguous"
        return None


def _itself(tensor: Tensor) -> Tensor:
    return tensor


def _lists(step: Any, *keys: str) -> list[list[Tensor]]:
    states = step.ctx.states
    return [[local_view(s[key]) for s in states] for key in keys]


def _steps(step: Any) -> list[Tensor]:
    """The step counts on the parameters' device, where the kernels read them (optarena keeps
    them on the CPU: one copy of all of them per bucket and step)."""
    steps = step.ctx.steps
    device = step.ctx.params[0].device
    if not steps or steps[0].device == device:
        return list(steps)
    return list(torch.stack([s.reshape(()) for s in steps]).to(device).unbind())


def _adam(step: Any, decoupled: bool) -> None:
    group, params, grads = step.ctx.group, step.ctx.params, step.grads
    amsgrad = bool(group["amsgrad"])
    exp_avgs, exp_avg_sqs = _lists(step, "exp_avg", "exp_avg_sq")
    maxima = _lists(step, "max_exp_avg_sq")[0] if amsgrad else []
    beta1, beta2 = (float(b) for b in group["betas"])
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kernel(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        maxima,
        _steps(step),
        amsgrad=amsgrad,
        lr=float(group["lr"]),
        beta1=beta1,
        beta2=beta2,
        weight_decay=float(group["weight_decay"]),
        eps=float(group["eps"]),
        maximize=bool(group.get("maximize", False)),
        grad_scale=None,
        found_inf=None,
    )


def adam(step: Any) -> None:
    """``torch._fused_adam_``, or ``_fused_adamw_`` with ``decoupled_weight_decay``."""
    _adam(step, bool(step.ctx.group.get("decoupled_weight_decay", False)))


def adamw(step: Any) -> None:
    """``torch._fused_adamw_``."""
    _adam(step, True)


def adagrad(step: Any) -> None:
    """``torch._fused_adagrad_``."""
    group = step.ctx.group
    (sums,) = _lists(step, "sum")
    torch._fused_adagrad_(
        step.ctx.params,
        step.grads,
        sums,
        _steps(step),
        lr=float(group["lr"]),
        lr_decay=float(group["lr_decay"]),
        weight_decay=float(group["weight_decay"]),
        eps=float(group["eps"]),
        maximize=bool(group.get("maximize", False)),
        grad_scale=None,
        found_inf=None,
    )


def sgd(step: Any) -> None:
    """``torch._fused_sgd_``; a momentum buffer made at this step takes the gradient itself, as
    torch.optim's first step does."""
    group = step.ctx.group
    momentum = float(group["momentum"])
    settings = dict(
        weight_decay=float(group["weight_decay"]),
        momentum=momentum,
        lr=float(group["lr"]),
        dampening=float(group["dampening"]),
        nesterov=bool(group["nesterov"]),
        maximize=bool(group.get("maximize", False)),
        grad_scale=None,
        found_inf=None,
    )
    params, grads = step.ctx.params, step.grads
    if momentum == 0:
        torch._fused_sgd_(params, grads, [], is_first_step=False, **settings)
        return
    (buffers,) = _lists(step, "momentum_buffer")
    fresh = step.new_state("momentum_buffer")
    for first in (True, False):
        chosen = [i for i in range(len(params)) if fresh[i] == first]
        if chosen:
            torch._fused_sgd_(
                [params[i] for i in chosen],
                [grads[i] for i in chosen],
                [buffers[i] for i in chosen],
                is_first_step=first,
                **settings,
            )


ADAM = TorchKernel("torch._fused_adam_", adam)
ADAMW = TorchKernel("torch._fused_adamw_", adamw)
ADAGRAD = TorchKernel("torch._fused_adagrad_", adagrad)
SGD = TorchKernel("torch._fused_sgd_", sgd)

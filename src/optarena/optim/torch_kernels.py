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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optarena.optim import step_counts
from optarena.transforms.base import itself, local_view
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


@dataclass
class KernelArgs:
    """What a kernel call takes for one bucket: the tensors as the kernel reads them."""

    group: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    states: dict[str, list[Tensor]]
    """The state tensors the kernel reads (:attr:`TorchKernel.state_keys`), by key."""
    steps: list[Tensor]
    """The step counts (empty for a chain without them): already advanced by the chain's
    preparation for :meth:`TorchKernel.run`, advanced by :meth:`TorchKernel.step` itself."""
    fresh: list[bool] | None = None
    """Whether each tensor's state was made at this step (SGD's first momentum step); None: none was."""


@dataclass(frozen=True)
class TorchKernel:
    """One of torch's fused kernels, and how an optimizer's bucket calls it."""

    name: str
    """The kernel, as shown in plans (``torch._fused_adam_``)."""
    call: Callable[[KernelArgs], None]
    """Steps a bucket with the kernel."""
    state_keys: Callable[[dict[str, Any]], tuple[str, ...]]
    """The state tensors the kernel reads, given the group's settings (``amsgrad``, ``momentum``)."""

    def run(self, step: Any) -> None:
        """Step a prepared bucket (an ``execution.PreparedStep``: steps advanced, state made)."""
        ctx = step.ctx
        keys = self.state_keys(ctx.group)
        states = {key: [local_view(s[key]) for s in ctx.states] for key in keys}
        fresh = step.new_state(keys[0]) if keys and keys[0] in ctx.created else None
        self.call(KernelArgs(ctx.group, ctx.params, step.grads, states, list(ctx.steps), fresh))

    def step(self, args: KernelArgs) -> None:
        """Advance the step counts of ``args`` (state gathered before the step), then call the kernel."""
        step_counts.increment(args.steps)
        self.call(args)

    def unsuitable(
        self, params: Sequence[Tensor], group: dict[str, Any], states: Sequence[dict[str, Any]] = ()
    ) -> str | None:
        """Why the kernel cannot step ``params`` with their ``states`` (None when it can). The
        kernels read memory in order whatever the strides, so every parameter, gradient and
        state tensor must be contiguous."""
        if group.get("differentiable"):
            return "differentiable=True"
        # one pass over the tensors, the per-kind checks once per kind
        op = self.name.removeprefix("torch.")
        part = local if any(is_sharded(p) for p in params) else itself
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
            if not all_contiguous(v for v in state.values() if isinstance(v, Tensor)):
                return "a state tensor that is not contiguous"
        return None


def all_contiguous(tensors: Iterable[Tensor]) -> bool:
    """Whether every tensor (each rank's part of a sharded one) is contiguous."""
    return all(local(t).is_contiguous() for t in tensors)


def _steps(args: KernelArgs) -> list[Tensor]:
    """The step counts on the parameters' device, where the kernels read them (optarena keeps
    them on the CPU: one copy of all of them per bucket and step)."""
    steps = args.steps
    device = args.params[0].device
    if not steps or steps[0].device == device:
        return steps
    return list(torch.stack([s.reshape(()) for s in steps]).to(device).unbind())


def _adam(args: KernelArgs, decoupled: bool) -> None:
    group = args.group
    amsgrad = bool(group["amsgrad"])
    beta1, beta2 = (float(b) for b in group["betas"])
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kernel(
        args.params,
        args.grads,
        args.states["exp_avg"],
        args.states["exp_avg_sq"],
        args.states["max_exp_avg_sq"] if amsgrad else [],
        _steps(args),
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


def _adam_state(group: dict[str, Any]) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if group["amsgrad"] else ("exp_avg", "exp_avg_sq")


def adam(args: KernelArgs) -> None:
    """``torch._fused_adam_``, or ``_fused_adamw_`` with ``decoupled_weight_decay``."""
    _adam(args, bool(args.group.get("decoupled_weight_decay", False)))


def adamw(args: KernelArgs) -> None:
    """``torch._fused_adamw_``."""
    _adam(args, True)


def adagrad(args: KernelArgs) -> None:
    """``torch._fused_adagrad_``."""
    group = args.group
    torch._fused_adagrad_(
        args.params,
        args.grads,
        args.states["sum"],
        _steps(args),
        lr=float(group["lr"]),
        lr_decay=float(group["lr_decay"]),
        weight_decay=float(group["weight_decay"]),
        eps=float(group["eps"]),
        maximize=bool(group.get("maximize", False)),
        grad_scale=None,
        found_inf=None,
    )


def sgd(args: KernelArgs) -> None:
    """``torch._fused_sgd_``; a momentum buffer made at this step takes the gradient itself, as
    torch.optim's first step does."""
    group = args.group
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
    params, grads = args.params, args.grads
    if momentum == 0:
        torch._fused_sgd_(params, grads, [], is_first_step=False, **settings)
        return
    buffers = args.states["momentum_buffer"]
    if args.fresh is None or not any(args.fresh):
        torch._fused_sgd_(params, grads, buffers, is_first_step=False, **settings)
        return
    for first in (True, False):
        chosen = [i for i in range(len(params)) if args.fresh[i] == first]
        if chosen:
            torch._fused_sgd_(
                [params[i] for i in chosen],
                [grads[i] for i in chosen],
                [buffers[i] for i in chosen],
                is_first_step=first,
                **settings,
            )


def _sgd_state(group: dict[str, Any]) -> tuple[str, ...]:
    return ("momentum_buffer",) if float(group["momentum"]) != 0 else ()


ADAM = TorchKernel("torch._fused_adam_", adam, _adam_state)
ADAMW = TorchKernel("torch._fused_adamw_", adamw, _adam_state)
ADAGRAD = TorchKernel("torch._fused_adagrad_", adagrad, lambda group: ("sum",))
SGD = TorchKernel("torch._fused_sgd_", sgd, _sgd_state)

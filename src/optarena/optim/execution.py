"""One step of a chain over one bucket of tensors: the preparation and the math, eagerly.

The same :func:`run_chain` runs on both backends: here with ``torch._foreach_*`` operations
(:data:`optarena.transforms.ops.FOREACH`), in :mod:`optarena.optim.fused` traced by
``torch.compile`` with per-tensor loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optarena.transforms.base import (
    Kernel,
    local_view,
    Prepared,
    StepContext,
    Transform,
    scalar_dtype,
)
from optarena.transforms.learning_rate import ScaleByLearningRate
from optarena.transforms import sharding
from optarena.transforms.ops import AUTOGRAD, FOREACH, ListOps

LOW_PRECISION = (torch.bfloat16, torch.float16)
STATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
REMAINDER = "param_remainder"
"""State key of a half-precision parameter's rounding remainder (exact value minus stored value)."""


def state_dtype_for(group: dict[str, Any], param_dtype: torch.dtype) -> torch.dtype | None:
    """The dtype of the state and of the math for a parameter dtype; None: the parameter's own.

    bf16 and fp16 parameters keep float32 state by default (``state_dtype="bfloat16"`` halves
    it); other dtypes keep state in their own dtype.
    """
    if param_dtype not in LOW_PRECISION:
        return None
    return STATE_DTYPES[group.get("state_dtype") or "float32"]


def prepare_precision(ctx: StepContext) -> None:
    """Create the rounding remainders of half-precision parameters (zero at first)."""
    if ctx.state_dtype is not None:
        ctx.init_state(REMAINDER, lambda p: torch.zeros_like(p, dtype=ctx.state_dtype))


def split_chain(transforms: Sequence[Transform]) -> tuple[list[Transform], bool]:
    """The transforms to run, and whether a final learning-rate scaling folds into the update."""
    *body, last = transforms
    if isinstance(last, ScaleByLearningRate):
        return body, True
    return [*body, last], False


def advance_steps(states: list[dict], uses_step: bool) -> list[Tensor]:
    """Increment (creating at 0 first) each parameter's ``step``; the step tensors."""
    if not uses_step:
        return []
    for state in states:
        if "step" not in state:
            state["step"] = torch.tensor(0.0, dtype=scalar_dtype())
    steps = [state["step"] for state in states]
    torch._foreach_add_(steps, 1)
    return steps


def prepare_chain(transforms: Sequence[Transform], ctx: StepContext) -> list[Prepared]:
    """Every transform's preparation for this step, in chain order (eager Python)."""
    return [t.prepare(ctx) for t in transforms]


class _StateViews:
    """``state(key)`` for the eager kernel: the bucket's state tensors as real views."""

    def __init__(self, ctx: StepContext):
        self._ctx = ctx

    def __getitem__(self, key: str) -> list[Tensor]:
        return self._ctx.state(key)


def run_chain(
    ops: ListOps,
    transforms: Sequence[Transform],
    fold_lr: bool,
    kernel: Kernel,
    grads: list[Tensor],
    maximize: bool,
    compute_dtype: torch.dtype | None = None,
) -> None:
    """Turn ``grads`` into the update through the chain and add it to ``kernel.params``.

    With ``compute_dtype`` (half-precision parameters) the chain works on the exact value
    ``param + remainder`` in ``compute_dtype``, the update is added in float32, and the
    parameter takes the rounded result while the remainder keeps what rounding lost, so
    updates smaller than the parameter's precision still accumulate.
    """
    stored = kernel.params
    if compute_dtype is not None:
        remainders = kernel.state(REMAINDER)
        exact = ops.cast(stored, torch.float32)
        ops.add_(exact, ops.cast(remainders, torch.float32))
        kernel.params = ops.cast(exact, compute_dtype)
        grads = ops.cast(grads, compute_dtype)
    kernel.grads = updates = grads
    if maximize:
        updates = ops.neg(updates)
        kernel.owned = True
    for index, transform in enumerate(transforms):
        kernel.current = index
        updates = transform.apply(ops, updates, kernel)
    target = kernel.params if compute_dtype is None else exact
    if compute_dtype is not None:
        updates = ops.cast(updates, torch.float32)
    if fold_lr:
        kernel.current = len(transforms)
        ops.add_(target, updates, kernel.scalar("neg_lr"))
    else:
        ops.add_(target, updates)
    if compute_dtype is not None:
        ops.copy_(stored, exact)
        lost = ops.cast(stored, torch.float32)
        ops.mul_(lost, -1.0)
        ops.add_(lost, exact)
        ops.copy_(remainders, lost)


@dataclass
class PreparedStep:
    """One bucket's step after its eager preparation: what either backend needs for the math."""

    body: list[Transform]
    fold_lr: bool
    ctx: StepContext
    prepared: list[Prepared]
    grads: list[Tensor]
    maximize: bool
    ops: ListOps = FOREACH
    """The eager backend: multi-tensor operations, or those of sharded tensors
    (:func:`optarena.transforms.sharding.step_mode`)."""

    @property
    def compute_dtype(self) -> torch.dtype | None:
        return self.ctx.state_dtype

    def run_eagerly(self, indices: Sequence[int] | None = None) -> None:
        """The math with multi-tensor operations, over the whole bucket or the tensors at ``indices``."""
        ctx, prepared, grads, ops = self.ctx, self.prepared, self.grads, self.ops
        if indices is not None:
            indices = list(indices)
            ctx = StepContext(
                ctx.group,
                [ctx.originals[i] for i in indices],
                [ctx.states[i] for i in indices],
                [],
                ctx.state_dtype,
                whole=ctx.view is not local_view,
            )
            ops = ops.subset(indices) if hasattr(ops, "subset") else ops
            prepared = [
                Prepared(
                    {k: [v[i] for i in indices] if isinstance(v, (list, tuple)) else v for k, v in p.scalars.items()},
                    dict(p.static),
                )
                for p in prepared
            ]
            grads = [grads[i] for i in indices]
        kernel = Kernel(ctx.params, _StateViews(ctx), prepared)
        kernel.entries = ctx.states
        if ctx.group.get("differentiable"):
            ops = AUTOGRAD
        run_chain(ops, self.body, self.fold_lr, kernel, grads, self.maximize, self.compute_dtype)


def prepare_step(
    transforms: Sequence[Transform],
    group: dict[str, Any],
    bucket: list[Tensor],
    states: list[dict],
    uses_step: bool,
    mode: str = sharding.LOCAL,
    compiled: bool = False,
) -> PreparedStep:
    """Advance the step counts, create missing state and compute this step's numbers (eager Python).

    ``mode`` (:func:`optarena.transforms.sharding.step_mode`) says what the math of a sharded
    bucket sees: each tensor's local part, with norms completed across ranks for ``NORMS``,
    or the ``DTensor`` objects themselves for ``WHOLE``.
    """
    body, fold_lr = split_chain(transforms)
    steps = advance_steps(states, uses_step)
    whole = mode == sharding.WHOLE
    ctx = StepContext(group, bucket, states, steps, state_dtype_for(group, bucket[0].dtype), whole=whole)
    ctx.compiled = compiled
    prepare_precision(ctx)
    prepared = prepare_chain(transforms, ctx)
    grads = [ctx.view(p.grad) for p in bucket]
    ops: ListOps = FOREACH
    if mode == sharding.WHOLE:
        ops = sharding.ShardedOps()
    elif mode == sharding.NORMS:
        ops = sharding.ShardedNormOps(bucket)
    return PreparedStep(body, fold_lr, ctx, prepared, grads, bool(group.get("maximize", False)), ops)


def eager_update(
    transforms: Sequence[Transform],
    group: dict[str, Any],
    bucket: list[Tensor],
    states: list[dict],
    uses_step: bool,
    mode: str = sharding.LOCAL,
    compiled: bool = False,
) -> None:
    """One step of the chain over ``bucket`` with multi-tensor operations (see :func:`prepare_step`);
    ``compiled``: matrix transforms run their kernels compiled."""
    prepare_step(transforms, group, bucket, states, uses_step, mode, compiled).run_eagerly()

"""One step of a chain over one bucket of tensors: the preparation and the math, eagerly.

The same :func:`run_chain` runs on both backends: here with ``torch._foreach_*`` operations
(:data:`optarena.transforms.ops.FOREACH`), in :mod:`optarena.optim.fused` traced by
``torch.compile`` with per-tensor loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, real_view, scalar_dtype
from optarena.transforms.learning_rate import ScaleByLearningRate
from optarena.transforms.ops import FOREACH, ListOps


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
) -> None:
    """Turn ``grads`` into the update through the chain and add it to ``kernel.params``."""
    updates = grads
    if maximize:
        updates = ops.neg(updates)
        kernel.owned = True
    for index, transform in enumerate(transforms):
        kernel.current = index
        updates = transform.apply(ops, updates, kernel)
    if fold_lr:
        kernel.current = len(transforms)
        ops.add_(kernel.params, updates, kernel.scalar("neg_lr"))
    else:
        ops.add_(kernel.params, updates)


def eager_update(
    transforms: Sequence[Transform],
    group: dict[str, Any],
    bucket: list[Tensor],
    states: list[dict],
    uses_step: bool,
) -> None:
    """One step of the chain over ``bucket`` with multi-tensor operations."""
    body, fold_lr = split_chain(transforms)
    steps = advance_steps(states, uses_step)
    ctx = StepContext(group, bucket, states, steps)
    prepared = prepare_chain(transforms, ctx)
    kernel = Kernel(ctx.params, _StateViews(ctx), prepared)
    grads = [real_view(p.grad) for p in bucket]
    run_chain(FOREACH, body, fold_lr, kernel, grads, bool(group.get("maximize", False)))

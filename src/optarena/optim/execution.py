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

from optarena.optim import step_counts
from optarena.optim.planning import Bucket
from optarena.transforms import sharding
from optarena.transforms.base import (
    Kernel,
    Prepared,
    StepContext,
    Transform,
    scalars,
)
from optarena.transforms.ops import AUTOGRAD, FOREACH, ListOps
from optarena.transforms.sharding import local

LOW_PRECISION = (torch.bfloat16, torch.float16)
STATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
Signals = dict[str, list[float]]
"""Named per-tensor quantities of one step, one float per tensor of a bucket."""

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


def split_chain(transforms: Sequence[Transform]) -> tuple[list[Transform], Transform | None]:
    """The transforms to run, and the final learning-rate scaling (``scales_by_learning_rate``)
    that folds into the parameter update instead, if the chain ends with one."""
    *body, last = transforms
    if last.scales_by_learning_rate:
        return body, last
    return [*body, last], None


def advance_steps(states: list[dict[str, Any]], uses_step: bool) -> list[Tensor]:
    """Increment (creating at 0 first) each parameter's ``step``; the step tensors
    (:mod:`optarena.optim.step_counts`: one operation for the bucket)."""
    if not uses_step:
        return []
    return step_counts.advance(states)


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
    fold: Transform | None,
    kernel: Kernel,
    grads: list[Tensor],
    maximize: bool,
    compute_dtype: torch.dtype | None = None,
) -> None:
    """Turn ``grads`` into the update through the chain and add it to ``kernel.params``; the
    ``fold`` transform (the learning rate, prepared after ``transforms``) scales it on the way.

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
    if folds_per_tensor(ops, transforms, fold, kernel, compute_dtype):
        assert fold is not None
        kernel.current = len(transforms)
        neg_lrs = fold.folded_rates(kernel, len(updates))  # type: ignore[attr-defined]
        *before, last = transforms
        for index, transform in enumerate(before):
            kernel.current = index
            updates = transform.apply(ops, updates, kernel)
        kernel.current = len(before)
        last.apply_folded(updates, kernel, neg_lrs)  # type: ignore[attr-defined]
        return
    for index, transform in enumerate(transforms):
        kernel.current = index
        updates = transform.apply(ops, updates, kernel)
    target = kernel.params if compute_dtype is None else exact
    if compute_dtype is not None:
        updates = ops.cast(updates, torch.float32)
    if fold is not None:
        kernel.current = len(transforms)
        fold.fold_into(ops, target, updates, kernel)
    else:
        ops.add_(target, updates)
    if compute_dtype is not None:
        ops.copy_(stored, exact)
        lost = ops.cast(stored, torch.float32)
        ops.mul_(lost, -1.0)
        ops.add_(lost, exact)
        ops.copy_(remainders, lost)


def folds_per_tensor(
    ops: ListOps,
    transforms: Sequence[Transform],
    fold: Transform | None,
    kernel: Kernel,
    compute_dtype: torch.dtype | None,
) -> bool:
    """Whether the chain ends with a matrix transform that steps tensor by tensor and then the
    learning rate (SM3), so that each parameter can take its update as soon as it is made
    (:meth:`optarena.transforms.matrix.MatrixTransform.apply_folded`) rather than every
    update being held until the last one is made: the local eager backend on parameters of
    their own precision (no rounding remainders), nothing sharded, no step for autograd."""
    if ops is not FOREACH or compute_dtype is not None or fold is None or not transforms:
        return False
    last = transforms[-1]
    if not getattr(last, "matrix", False) or not last.folds_per_tensor():  # type: ignore[attr-defined]
        return False
    return hasattr(fold, "folded_rates") and not any(sharding.is_sharded(p) for p in kernel.params)


@dataclass
class PreparedStep:
    """One bucket's step after its eager preparation: what either backend needs for the math."""

    body: list[Transform]
    fold: Transform | None
    ctx: StepContext
    prepared: list[Prepared]
    grads: list[Tensor]
    maximize: bool
    ops: ListOps = FOREACH
    """The eager backend: multi-tensor operations, or those of sharded tensors
    (:func:`optarena.transforms.sharding.step_mode`)."""
    recording: bool = False
    """Whether this step records signals (``ChainOptimizer.record_signals``)."""

    def new_state(self, key: str) -> list[bool]:
        """Whether each tensor's ``key`` state was made at this step (its first)."""
        made = self.ctx.created.get(key, set())
        return [i in made for i in range(len(self.grads))]

    def prepared_signals(self, indices: Sequence[int] | None = None) -> Signals:
        """The signals the preparation computed, one float per tensor (at ``indices``)."""
        if not self.recording:
            return {}
        n = len(self.grads)
        chosen = range(n) if indices is None else indices
        out: Signals = {}
        for p in self.prepared:
            for name, value in p.signals.items():
                values = list(value) if isinstance(value, (list, tuple)) else [float(value)] * n
                out[name] = [values[i] for i in chosen]
        return out

    @property
    def compute_dtype(self) -> torch.dtype | None:
        return self.ctx.state_dtype

    def run_eagerly(self, indices: Sequence[int] | None = None) -> Signals:
        """The math with multi-tensor operations, over the whole bucket or the tensors at
        ``indices``; the signals of those tensors, when recording."""
        ctx, prepared, grads, ops = self.ctx, self.prepared, self.grads, self.ops
        signals = self.prepared_signals(indices)
        if indices is not None:
            indices = list(indices)
            ctx = ctx.subset(indices)
            ops = ops.subset(indices) if hasattr(ops, "subset") else ops
            prepared = [
                Prepared(
                    {k: [v[i] for i in indices] if isinstance(v, (list, tuple)) else v for k, v in p.scalars.items()},
                    dict(p.static),
                )
                for p in prepared
            ]
            grads = [grads[i] for i in indices]
        kernel = Kernel(ctx.params, _StateViews(ctx), prepared, recording=self.recording, entries=ctx.states)
        if ctx.group.get("differentiable"):
            ops = AUTOGRAD
        run_chain(ops, self.body, self.fold, kernel, grads, self.maximize, self.compute_dtype)
        for name, values in (kernel.signals or {}).items():
            signals[name] = [float(v) for v in scalars([local(v) for v in values])]
        return signals


def prepare_step(bucket: Bucket, mode: str = sharding.LOCAL) -> PreparedStep:
    """Advance the step counts, create missing state and compute this step's numbers (eager Python).

    ``mode`` (:func:`optarena.transforms.sharding.step_mode`) says what the math of a sharded
    bucket sees: each tensor's local part, with norms completed across ranks for ``NORMS``,
    or the ``DTensor`` objects themselves for ``WHOLE``.
    """
    group, params, states = bucket.group, bucket.params, bucket.states
    body, fold = split_chain(bucket.transforms)
    steps = advance_steps(states, bucket.uses_step)
    whole = mode == sharding.WHOLE
    state_dtype = state_dtype_for(group, params[0].dtype)
    ctx = StepContext(group, params, states, steps, state_dtype, whole=whole, names=bucket.names, plain=bucket.plain)
    prepare_precision(ctx)
    prepared = prepare_chain(bucket.transforms, ctx)
    grads = [p.grad for p in params] if bucket.plain else [ctx.view(p.grad) for p in params]
    ops: ListOps = FOREACH
    if mode == sharding.WHOLE:
        ops = sharding.ShardedOps()
    elif mode == sharding.NORMS:
        ops = sharding.ShardedNormOps(params)
    maximize = bool(group.get("maximize", False))
    return PreparedStep(body, fold, ctx, prepared, grads, maximize, ops, bucket.recording)


def eager_update(bucket: Bucket, mode: str = sharding.LOCAL) -> Signals:
    """One step of the chain over the bucket with multi-tensor operations (see :func:`prepare_step`);
    its signals, when recording."""
    return prepare_step(bucket, mode).run_eagerly()

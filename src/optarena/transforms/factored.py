"""Adafactor's transforms: factored second moments, update clipping, the relative step size.

Shazeer & Stern 2018, https://arxiv.org/abs/1804.04235, with the details of the fairseq /
Hugging Face Transformers implementation (eps added to g^2, first moment on the scaled
update, weight decay scaled by the step size).

These transforms are not elementwise (row and column means, per-tensor RMS), and the
factored moments have shapes of their own, so their reductions run tensor by tensor on
both backends. Factored (>= 2-D) and unfactored tensors go into separate buckets
(:meth:`ScaleByFactoredRms.bucket_key`), since their state differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Optional, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.ops import Fresh, ListOps, Scalar
from optarena.transforms.sharding import zeros_without_dim

EPS_PAIR = Hyper(
    (1e-30, 1e-3),
    Tuple((NONNEGATIVE, NONNEGATIVE)),
    "(eps1, eps2): added to g^2, and the least parameter scale",
)


class UpdatesWithRms(Fresh):
    """A list of updates that carries the RMS of each (0-d tensors), from the transform that
    made them; :class:`ClipByBlockRms` takes it instead of reducing over the updates again."""

    def __init__(self, updates: list[Tensor], rms: list[Tensor]):
        super().__init__(updates)
        self.rms = rms


def is_factored(param: Tensor) -> bool:
    """Whether Adafactor keeps a factored second moment for ``param``: 2 or more dimensions.

    An empty tensor keeps an (empty) unfactored one: its column means would be NaN.
    """
    return param.dim() >= 2 and param.numel() > 0


def _factored_bucket(transform: Transform, ctx: StepContext) -> bool:
    kinds = {is_factored(p) for p in ctx.originals}
    if len(kinds) > 1:
        raise RuntimeError(
            f"{transform.name} got a bucket mixing factored (>= 2-D) and unfactored tensors; "
            "the optimizer must bucket them apart by Transform.bucket_key"
        )
    return kinds == {True}


def _root_sizes(ctx: StepContext) -> float | list[float]:
    """``sqrt(numel)`` of each tensor (1 for empty ones), to turn a norm into an RMS."""
    return ctx.per_tensor([math.sqrt(max(p.numel(), 1)) for p in ctx.originals])


class ScaleByFactoredRms(Transform):
    """``u / sqrt(v_hat)`` with Adafactor's second moment (Shazeer & Stern 2018, Algorithms 4 and 5).

    ``beta2_t = 1 - t^decay_rate``; ``s = u^2 + eps1``. For a tensor of 2 or more dimensions
    (the last two are the matrix) ``R <- beta2_t R + (1 - beta2_t) mean_last(s)`` and
    ``C <- beta2_t C + (1 - beta2_t) mean_second_last(s)``, and
    ``v_hat = (R / mean_last(R)) outer C``: ``m + n`` numbers for an ``m x n`` matrix. Otherwise
    ``v <- beta2_t v + (1 - beta2_t) s`` and ``v_hat = v``.

    For a matrix the output comes with its RMS (:class:`UpdatesWithRms`), taken from row sums
    so that update clipping needs no reduction of its own: on the fused path the step is then
    three passes over the gradient (column means; row means with the RMS and the parameter's
    norm; the update), and the per-row, per-column and per-tensor factors are computed once
    into memory (``ops.materialize``) instead of at every element.
    """

    hyperparameters = {
        "eps": EPS_PAIR,
        "decay_rate": Hyper(-0.8, Real(high=0.0), "beta2_t = 1 - t^decay_rate"),
    }
    state_keys = ("exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq")
    uses_step = True
    elementwise = False

    def bucket_key(self, param: Tensor, name: str | None = None) -> bool:
        return is_factored(param)

    def uses_shapes_on(self, params: Sequence[Tensor]) -> bool:
        return any(is_factored(p) for p in params)

    def prepare(self, ctx: StepContext) -> Prepared:
        factored = _factored_bucket(self, ctx)
        if factored:
            ctx.init_state("exp_avg_sq_row", lambda p: zeros_without_dim(p, -1))
            ctx.init_state("exp_avg_sq_col", lambda p: zeros_without_dim(p, -2))
        else:
            ctx.init_state("exp_avg_sq", zeros)
        decay_rate = self.value(ctx, "decay_rate")
        keep = [1.0 - t**decay_rate for t in ctx.step_values]
        scalars = {
            "beta2": ctx.per_tensor(keep),
            "one_minus_beta2": ctx.per_tensor([1.0 - b for b in keep]),
            "eps1": float(self.value(ctx, "eps")[0]),
        }
        if factored:
            scalars["root_rows"] = ctx.per_tensor([math.sqrt(math.prod(p.shape[:-1])) for p in ctx.originals])
        return Prepared(scalars=scalars, static={"factored": factored})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        squared = ops.product(updates, updates)
        squares = ops.plus(squared, k.scalar("eps1"))
        beta2, one_minus_beta2 = k.scalar("beta2"), k.scalar("one_minus_beta2")
        if not k.static("factored"):
            second = k.state("exp_avg_sq")
            ops.mul_(second, beta2)
            ops.add_(second, squares, one_minus_beta2)
            out = ops.rsqrt(second)
            ops.mul_(out, updates)
            return out
        rows, cols = k.state("exp_avg_sq_row"), k.state("exp_avg_sq_col")
        ops.mul_(cols, beta2)
        ops.add_(cols, ops.mean(squares, -2), one_minus_beta2)
        col_factors = ops.materialize(ops.rsqrt(cols))
        # the output is r_i c_j u_ij: its mean square is mean_i(r_i^2 w_i) with
        # w_i = mean_j(c_j^2 u_ij^2), a row reduction beside the row means of s
        col_weights = ops.unsqueeze(ops.product(col_factors, col_factors), -2)
        weighted = ops.mean(ops.product(squared, col_weights), -1)
        ops.mul_(rows, beta2)
        ops.add_(rows, ops.mean(squares, -1), one_minus_beta2)
        row_factors = ops.materialize(ops.rsqrt(ops.div(rows, ops.mean(rows, -1, keepdim=True))))
        rms = ops.norm(ops.product(row_factors, ops.sqrt(weighted)))
        ops.div_(rms, k.scalar("root_rows"))
        out = ops.product(ops.unsqueeze(row_factors, -1), ops.unsqueeze(col_factors, -2))
        ops.mul_(out, updates)
        return UpdatesWithRms(out, rms)


class ClipByBlockRms(Transform):
    """``u / max(1, RMS(u) / clip_threshold)`` per tensor: Adafactor's update clipping.

    ``RMS(u)`` is the one the updates carry (:class:`UpdatesWithRms`) when they do.
    """

    hyperparameters = {
        "clip_threshold": Hyper(1.0, Real(0.0, open_low=True), "the largest RMS of an update before scaling"),
    }
    elementwise = False
    needs_shape = False  # whole-tensor RMS: flattened tensors give the same numbers

    def prepare(self, ctx: StepContext) -> Prepared:
        return Prepared(scalars={"root_size": _root_sizes(ctx), "clip_threshold": self.value(ctx, "clip_threshold")})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        scales = getattr(updates, "rms", None)
        updates = k.writable(ops, updates)
        if scales is None:
            scales = ops.norm(updates)
            ops.div_(scales, k.scalar("root_size"))
        if k.recording:
            k.report("update_rms", ops.clone(scales))
        ops.div_(scales, k.scalar("clip_threshold"))
        ops.clamp_(scales, 1.0)
        if k.recording:
            k.report("clip_scale", ops.clone(scales))
        # one number per tensor, applied to every element: into memory once (ops.materialize)
        return ops.mul_(updates, ops.materialize(ops.reciprocal_(scales)))


def relative_step(t: float, warmup_init: bool) -> float:
    """Adafactor's relative step size at step ``t``: ``min(1e-2, 1/sqrt(t))``, or
    ``min(1e-6 t, 1/sqrt(t))`` with ``warmup_init``."""
    return min(1e-6 * t if warmup_init else 1e-2, 1.0 / math.sqrt(t))


class ScaleByRelativeStep(Transform):
    """Adafactor's step: ``-(m + weight_decay * alpha_t * theta)`` with ``m`` built on ``alpha_t * u``.

    ``rho_t = min(1e-2, 1 / sqrt(t))`` with ``relative_step`` (``min(1e-6 t, 1 / sqrt(t))`` with
    ``warmup_init``), else ``lr``; ``alpha_t = rho_t * max(eps2, RMS(theta))`` with
    ``scale_parameter``, else ``rho_t``. With ``beta1``, ``m <- beta1 m + (1 - beta1) alpha_t u``
    (no bias correction); without, ``m = alpha_t u``. The output is the parameter change.
    """

    hyperparameters = {
        "lr": Hyper(
            None,
            Optional(NONNEGATIVE),
            "fixed step size, with relative_step=False; with relative_step=True None, or 0 to pause the updates",
        ),
        "eps": EPS_PAIR,
        "beta1": Hyper(None, Optional(UNIT), "decay of the first moment; None keeps none"),
        "weight_decay": Hyper(0.0, NONNEGATIVE, "weight decay, scaled by the step size alpha_t"),
        "scale_parameter": Hyper(True, Flag(), "scale the step by the parameter's RMS"),
        "relative_step": Hyper(True, Flag(), "step size min(1e-2, 1/sqrt(t)) instead of lr"),
        "warmup_init": Hyper(False, Flag(), "relative step min(1e-6 t, 1/sqrt(t)) (needs relative_step)"),
    }
    state_keys = ("exp_avg",)
    uses_step = True
    elementwise = False
    needs_shape = False  # whole-tensor RMS of the parameter: flattened tensors give the same numbers

    def relative_steps(self, ctx: StepContext) -> list[float]:
        """``rho_t`` for each tensor (0 while ``lr`` is 0, in either mode)."""
        lr = self.value(ctx, "lr")
        if not self.value(ctx, "relative_step") or lr == 0:
            return [float(lr)] * len(ctx.params)
        warmup = bool(self.value(ctx, "warmup_init"))
        return [relative_step(t, warmup) for t in ctx.step_values]

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1 = self.value(ctx, "beta1")
        if beta1 is not None:
            ctx.init_state("exp_avg", zeros)
        decay = self.value(ctx, "weight_decay")
        rhos = self.relative_steps(ctx)
        return Prepared(
            signals={"relative_step": ctx.per_tensor(rhos)},
            scalars={
                "rho": ctx.per_tensor(rhos),
                "root_size": _root_sizes(ctx),
                "eps2": float(self.value(ctx, "eps")[1]),
                "beta1": 0.0 if beta1 is None else float(beta1),
                "one_minus_beta1": 1.0 if beta1 is None else 1.0 - float(beta1),
                "weight_decay": decay,
                "decay_rho": ctx.per_tensor([decay * rho for rho in rhos]),
            },
            static={
                "scale_parameter": bool(self.value(ctx, "scale_parameter")),
                "momentum": beta1 is not None,
                "decay": decay != 0,
            },
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        if k.static("scale_parameter"):
            alphas = ops.norm_alongside(k.params, k.grads)
            ops.div_(alphas, k.scalar("root_size"))
            ops.clamp_(alphas, k.scalar("eps2"))
            ops.mul_(alphas, k.scalar("rho"))
            alphas = ops.materialize(alphas)
            k.report("step_size", alphas)
            decays = ops.scaled(alphas, k.scalar("weight_decay")) if k.static("decay") else None
        else:
            alphas, decays = k.scalar("rho"), k.scalar("decay_rho")
        out: list[Tensor] = ops.scaled(updates, alphas)
        if k.static("momentum"):
            exp_avgs = k.state("exp_avg")
            ops.mul_(exp_avgs, k.scalar("beta1"))
            ops.add_(exp_avgs, out, k.scalar("one_minus_beta1"))
            out = exp_avgs
        if k.static("decay"):
            out = ops.added(out, k.params, cast(Scalar, decays))  # set whenever decay is
        return ops.neg(out)

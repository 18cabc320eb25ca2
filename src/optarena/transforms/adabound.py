"""AdaBound's step: Adam's per-coordinate step size clipped between bounds that close in on SGD's."""

from __future__ import annotations

import math

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper, Real
from optarena.transforms.adam import BETAS, EPS, betas, init_moments, moment_scalars, update_moments
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, bias_corrections, zeros
from optarena.transforms.learning_rate import LR
from optarena.transforms.ops import ListOps

BASE_LR = "base_lr"
"""Param-group key holding the group's learning rate when the optimizer was built."""


class ScaleByAdabound(Transform):
    """AdaBound / AMSBound (Luo et al. 2019, https://arxiv.org/abs/1902.09843).

    ``m, v`` as in Adam (``v`` replaced by its running maximum with ``amsbound``);
    ``eta = clamp(lr sqrt(1 - beta2^t) / (1 - beta1^t) / (sqrt(v) + eps), lower_t, upper_t)``
    with ``lower_t = f (1 - 1 / (gamma t + 1))``, ``upper_t = f (1 + 1 / (gamma t))`` and
    ``f = final_lr * lr / base_lr``; output ``-eta * m`` (the parameter change: the learning
    rate is inside the clip, so it cannot be a final scaling).

    ``base_lr`` is the group's learning rate when the optimizer was built (the group key
    ``base_lr``, set by :class:`optarena.AdaBound`; the current ``lr`` where it is absent),
    so a scheduler moves the bounds with the learning rate, as in the authors' code.
    """

    hyperparameters = {
        "lr": LR,
        "betas": BETAS,
        "final_lr": Hyper(0.1, NONNEGATIVE, "the SGD learning rate both bounds converge to"),
        "gamma": Hyper(1e-3, Real(0.0, 1.0, open_low=True, open_high=True), "convergence speed of the bounds"),
        "eps": EPS,
        "amsbound": Hyper(False, Flag(), "use the running maximum of the second moment (AMSBound)"),
    }
    group_keys = (BASE_LR,)
    state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        init_moments(ctx)
        amsbound = bool(self.value(ctx, "amsbound"))
        if amsbound:
            ctx.init_state("max_exp_avg_sq", zeros)
        lr = self.value(ctx, "lr")
        base_lr = float(ctx.group.get(BASE_LR, lr))
        final_lr = self.value(ctx, "final_lr") * lr / base_lr if base_lr > 0 else 0.0
        gamma = self.value(ctx, "gamma")
        steps = ctx.step_values
        corrections1 = bias_corrections(beta1, steps)
        corrections2 = bias_corrections(beta2, steps)
        return Prepared(
            signals={
                "lower_bound": ctx.per_tensor([final_lr * (1.0 - 1.0 / (gamma * t + 1.0)) for t in steps]),
                "upper_bound": ctx.per_tensor([final_lr * (1.0 + 1.0 / (gamma * t)) for t in steps]),
            },
            scalars={
                **moment_scalars(ctx, beta1, beta2),
                "eps": self.value(ctx, "eps"),
                # negated: -clamp(x, lower, upper) = clamp(-x, -upper, -lower) exactly, so the
                # output needs no negation of its own
                "neg_step_size": ctx.per_tensor(
                    [-lr * math.sqrt(c2) / c1 for c1, c2 in zip(corrections1, corrections2)]
                ),
                "neg_upper": ctx.per_tensor([-final_lr * (1.0 + 1.0 / (gamma * t)) for t in steps]),
                "neg_lower": ctx.per_tensor([-final_lr * (1.0 - 1.0 / (gamma * t + 1.0)) for t in steps]),
            },
            static={"amsbound": amsbound},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, second = update_moments(ops, updates, k)
        if k.static("amsbound"):
            second = ops.maximum_(k.state("max_exp_avg_sq"), second)
        out = ops.sqrt(second)
        ops.add_scalar_(out, k.scalar("eps"))
        ops.reciprocal_(out)
        ops.mul_(out, k.scalar("neg_step_size"))
        ops.clamp_(out, k.scalar("neg_upper"), k.scalar("neg_lower"))
        ops.mul_(out, exp_avgs)
        return out

"""AdEMAMix's direction: Adam whose numerator mixes a fast and a slow momentum."""

from __future__ import annotations

import math

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Hyper, Optional, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, bias_corrections, zeros
from optarena.transforms.ops import ListOps


def alpha_schedule(step: float, alpha: float, period: float | None) -> float:
    """The slow momentum's weight at ``step``: a linear warm-up from 0 over ``period`` steps."""
    return alpha if period is None else min(step * alpha / period, alpha)


def beta3_schedule(step: float, beta1: float, beta3: float, period: float | None) -> float:
    """The slow momentum's decay at ``step``: from ``beta1`` to ``beta3`` over ``period`` steps,
    so that the momentum's half-life grows linearly (the paper's scheduler)."""
    if period is None:
        return beta3
    fraction = step / period
    log1, log3 = math.log(beta1), math.log(beta3)
    return min(math.exp(log1 * log3 / ((1.0 - fraction) * log3 + fraction * log1)), beta3)


class ScaleByAdemamix(Transform):
    """AdEMAMix's direction (Pagliardini et al. 2024, https://arxiv.org/abs/2409.03137).

    ``m1 <- beta1 m1 + (1 - beta1) u``; ``m2 <- beta3 m2 + (1 - beta3) u``;
    ``v <- beta2 v + (1 - beta2) u^2``; output
    ``(m1 / (1 - beta1^t) + alpha m2) / (sqrt(v / (1 - beta2^t)) + eps)``; the slow momentum
    ``m2`` has no bias correction. With ``t_alpha_beta3`` the paper's schedulers warm
    ``alpha`` up linearly and ``beta3`` from ``beta1`` over that many steps.
    """

    hyperparameters = {
        "betas": Hyper(
            (0.9, 0.999, 0.9999),
            Tuple((UNIT, UNIT, UNIT)),
            "decay rates of the fast momentum, the second moment and the slow momentum",
        ),
        "alpha": Hyper(5.0, NONNEGATIVE, "weight of the slow momentum in the numerator"),
        "eps": Hyper(1e-8, NONNEGATIVE, "added to the denominator"),
        "t_alpha_beta3": Hyper(
            None,
            Optional(Real(0.0, open_low=True)),
            "warm-up steps of alpha and beta3 (None: no warm-up)",
        ),
    }
    state_keys = ("exp_avg", "exp_avg_slow", "exp_avg_sq")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2, beta3 = (float(b) for b in self.value(ctx, "betas"))
        alpha = float(self.value(ctx, "alpha"))
        period = self.value(ctx, "t_alpha_beta3")
        period = None if period is None else float(period)
        for key in self.state_keys:
            ctx.init_state(key, zeros)
        steps = ctx.step_values
        corrections1 = bias_corrections(beta1, steps)
        corrections2 = bias_corrections(beta2, steps)
        return Prepared(
            scalars={
                "one_minus_beta1": 1.0 - beta1,
                "beta2": beta2,
                "one_minus_beta2": 1.0 - beta2,
                "one_minus_beta3": ctx.per_tensor([1.0 - beta3_schedule(t, beta1, beta3, period) for t in steps]),
                "fast_weight": ctx.per_tensor([1.0 / c for c in corrections1]),
                "alpha": ctx.per_tensor([alpha_schedule(t, alpha, period) for t in steps]),
                "inv_sqrt_bias_correction2": ctx.per_tensor([1.0 / math.sqrt(c) for c in corrections2]),
                "eps": self.value(ctx, "eps"),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        fast, slow, second = k.state("exp_avg"), k.state("exp_avg_slow"), k.state("exp_avg_sq")
        ops.lerp_(fast, updates, k.scalar("one_minus_beta1"))
        ops.lerp_(slow, updates, k.scalar("one_minus_beta3"))
        ops.mul_(second, k.scalar("beta2"))
        ops.addcmul_(second, updates, updates, k.scalar("one_minus_beta2"))
        out = ops.sqrt(second)
        ops.mul_(out, k.scalar("inv_sqrt_bias_correction2"))
        ops.add_scalar_(out, k.scalar("eps"))
        ops.reciprocal_(out)
        numerator = ops.scaled(fast, k.scalar("fast_weight"))
        ops.add_(numerator, slow, k.scalar("alpha"))
        ops.mul_(out, numerator)
        return out

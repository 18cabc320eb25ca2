"""ADOPT's direction: momentum of gradients normalised by the previous second moment."""

from __future__ import annotations

from typing import cast

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.ops import ListOps, Scalar


class ScaleByAdopt(Transform):
    """ADOPT's direction (Taniguchi et al. 2024, https://arxiv.org/abs/2411.02853).

    At the first step only ``v <- u^2`` (the output is zero). After it, with ``t`` the step:
    ``n = clip(u / max(sqrt(v), eps), -c_t, c_t)`` with the *previous* ``v`` and
    ``c_t = (t - 1)^(1/4)`` (no clipping with ``clipping=False``); ``m <- beta1 m + (1 - beta1) n``;
    ``v <- beta2 v + (1 - beta2) u^2``; output ``m``. As optax.contrib.scale_by_adopt: the first
    step is one formula with ``beta2`` taken as 0 and ``beta1`` as 1 (and ``c_1 = 0``).
    """

    hyperparameters = {
        "betas": Hyper((0.9, 0.9999), Tuple((UNIT, UNIT)), "decay rates of the first and second moments"),
        "eps": Hyper(1e-6, NONNEGATIVE, "floor of the second moment's square root"),
        "clipping": Hyper(True, Flag(), "clip the normalised gradient to +-(t-1)^(1/4) (ADOPT's stabiliser)"),
    }
    state_keys = ("exp_avg", "exp_avg_sq")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        ctx.init_state("exp_avg", zeros)
        ctx.init_state("exp_avg_sq", zeros)
        steps = ctx.step_values
        first = [t <= 1.0 for t in steps]
        clipping = bool(self.value(ctx, "clipping"))
        return Prepared(
            scalars={
                "one_minus_beta1": ctx.per_tensor([0.0 if f else 1.0 - beta1 for f in first]),
                "beta2": ctx.per_tensor([0.0 if f else beta2 for f in first]),
                "one_minus_beta2": ctx.per_tensor([1.0 if f else 1.0 - beta2 for f in first]),
                "eps": self.value(ctx, "eps"),
                "clip": ctx.per_tensor([(t - 1.0) ** 0.25 for t in steps]),
            },
            static={"clipping": clipping},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, exp_avg_sqs = k.state("exp_avg"), k.state("exp_avg_sq")
        normalised = ops.sqrt(exp_avg_sqs)
        ops.clamp_(normalised, low=k.scalar("eps"))
        normalised = ops.div(updates, normalised)
        if k.static("clipping"):
            clip = k.scalar("clip")
            ops.clamp_(normalised, low=negated(clip), high=clip)
        ops.lerp_(exp_avgs, normalised, k.scalar("one_minus_beta1"))
        ops.mul_(exp_avg_sqs, k.scalar("beta2"))
        ops.addcmul_(exp_avg_sqs, updates, updates, k.scalar("one_minus_beta2"))
        return exp_avgs


def negated(value: Scalar) -> Scalar:
    """``-value`` for a scalar argument: a number, a 0-d tensor, or a list of either."""
    if isinstance(value, (list, tuple)):
        return cast(Scalar, [-v for v in value])
    return -value

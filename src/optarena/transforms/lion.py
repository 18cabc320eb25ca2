"""Lion's direction: the sign of an interpolation between momentum and gradient."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import UNIT, Hyper, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.ops import ListOps

LION_BETAS = Hyper(
    (0.9, 0.99),
    Tuple((UNIT, UNIT)),
    "interpolation weight of the momentum in the update (beta1) and decay of the momentum (beta2)",
)


class ScaleByLion(Transform):
    """Lion's direction (Chen et al. 2023, https://arxiv.org/abs/2302.06675).

    ``d = sign(beta1 m + (1 - beta1) u)``, then ``m <- beta2 m + (1 - beta2) u``; output ``d``
    (entries -1, 0 or 1). The momentum ``exp_avg`` starts at zero.
    """

    hyperparameters = {"betas": LION_BETAS}
    state_keys = ("exp_avg",)

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        ctx.init_state("exp_avg", zeros)
        return Prepared(scalars={"one_minus_beta1": 1.0 - beta1, "one_minus_beta2": 1.0 - beta2})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs = k.state("exp_avg")
        out = ops.clone(exp_avgs)
        ops.lerp_(out, updates, k.scalar("one_minus_beta1"))
        out = ops.sign(out)
        ops.lerp_(exp_avgs, updates, k.scalar("one_minus_beta2"))
        return out

"""Sophia's direction: momentum over a clipped diagonal-Hessian preconditioner."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import UNIT, Flag, Hyper, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, bias_corrections, zeros
from optarena.transforms.ops import ListOps


class ScaleBySophia(Transform):
    """Sophia's direction (Liu et al. 2023, https://arxiv.org/abs/2305.14342, Algorithm 3).

    ``m <- beta1 m + (1 - beta1) u``; output ``clip(m / max(rho h, eps), -1, 1)`` with ``h``
    (state ``hessian``) the running estimate of the Hessian's diagonal, and ``m`` divided by
    ``1 - beta1^t`` first with ``bias_correction`` (optax's variant). ``h`` starts at zero (the
    first steps are sign steps) and is refreshed outside this transform, by
    :class:`optarena.optim.sophia.Sophia`, every ``update_period`` steps.
    """

    hyperparameters = {
        "betas": Hyper((0.965, 0.99), Tuple((UNIT, UNIT)), "decay rates of the momentum and of the Hessian estimate"),
        "rho": Hyper(
            0.04, Real(0.0, open_low=True), "scale of the Hessian estimate in the denominator (gamma in optax)"
        ),
        "eps": Hyper(1e-15, Real(0.0, open_low=True), "floor of the denominator"),
        "bias_correction": Hyper(False, Flag(), "divide the momentum by 1 - beta1^t (optax.contrib.sophia)"),
    }
    state_keys = ("exp_avg", "hessian")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1 = float(self.value(ctx, "betas")[0])
        ctx.init_state("exp_avg", zeros)
        ctx.init_state("hessian", zeros)
        corrected = bool(self.value(ctx, "bias_correction"))
        corrections = bias_corrections(beta1, ctx.step_values) if corrected else [1.0] * len(ctx.states)
        return Prepared(
            scalars={
                "one_minus_beta1": 1.0 - beta1,
                "rho": ctx.per_tensor([self.value(ctx, "rho") * c for c in corrections]),
                "eps": ctx.per_tensor([self.value(ctx, "eps") * c for c in corrections]),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs = k.state("exp_avg")
        ops.lerp_(exp_avgs, updates, k.scalar("one_minus_beta1"))
        denominators = ops.scaled(k.state("hessian"), k.scalar("rho"))
        ops.clamp_(denominators, low=k.scalar("eps"))
        out = ops.div(exp_avgs, denominators)
        ops.clamp_(out, low=-1.0, high=1.0)
        return out

"""Per-coordinate step sizes from accumulated squared gradients: AdaGrad, AdaDelta, RMSprop."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper, Real
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, filled_like, zeros
from optarena.transforms.ops import ListOps


class ScaleByAdagrad(Transform):
    """``sum <- sum + u^2``; ``u <- u / ((sqrt(sum) + eps) * (1 + (t - 1) * lr_decay))``.

    Duchi, Hazan & Singer 2011 (https://jmlr.org/papers/v12/duchi11a.html), with torch's
    ``lr_decay`` and ``initial_accumulator_value``.
    """

    hyperparameters = {
        "lr_decay": Hyper(0.0, NONNEGATIVE, "learning-rate decay: lr / (1 + (t - 1) * lr_decay)"),
        "eps": Hyper(1e-10, NONNEGATIVE, "added to the denominator"),
        "initial_accumulator_value": Hyper(0.0, NONNEGATIVE, "starting value of the sum"),
    }
    state_keys = ("sum",)
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        start = self.value(ctx, "initial_accumulator_value")
        ctx.init_state("sum", lambda p: filled_like(p, start))
        lr_decay = self.value(ctx, "lr_decay")
        return Prepared(
            scalars={
                "eps": self.value(ctx, "eps"),
                "decay_factor": ctx.per_tensor([1.0 + (t - 1.0) * lr_decay for t in ctx.step_values]),
            },
            static={"decays": lr_decay != 0},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        sums = k.state("sum")
        ops.addcmul_(sums, updates, updates, 1.0)
        denominators = ops.sqrt(sums)
        ops.add_scalar_(denominators, k.scalar("eps"))
        if k.static("decays"):
            ops.mul_(denominators, k.scalar("decay_factor"))
        ops.reciprocal_(denominators)
        ops.mul_(denominators, updates)
        return denominators


class ScaleByAdadelta(Transform):
    """AdaDelta (Zeiler 2012, https://arxiv.org/abs/1212.5701).

    ``v <- rho v + (1 - rho) u^2``; ``d = sqrt(a + eps) / sqrt(v + eps) * u``;
    ``a <- rho a + (1 - rho) d^2``; output ``d``.
    """

    hyperparameters = {
        "rho": Hyper(0.9, Real(0.0, 1.0), "decay of the running averages"),
        "eps": Hyper(1e-6, NONNEGATIVE, "added inside the square roots"),
    }
    state_keys = ("square_avg", "acc_delta")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        ctx.init_state("square_avg", zeros)
        ctx.init_state("acc_delta", zeros)
        rho = self.value(ctx, "rho")
        return Prepared(scalars={"rho": rho, "one_minus_rho": 1.0 - rho, "eps": self.value(ctx, "eps")})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        rho, one_minus_rho, eps = k.scalar("rho"), k.scalar("one_minus_rho"), k.scalar("eps")
        square_avgs, acc_deltas = k.state("square_avg"), k.state("acc_delta")
        ops.mul_(square_avgs, rho)
        ops.addcmul_(square_avgs, updates, updates, one_minus_rho)
        std = ops.plus(square_avgs, eps)
        ops.sqrt_(std)
        deltas = ops.plus(acc_deltas, eps)
        ops.sqrt_(deltas)
        ops.div_(deltas, std)
        ops.mul_(deltas, updates)
        ops.mul_(acc_deltas, rho)
        ops.addcmul_(acc_deltas, deltas, deltas, one_minus_rho)
        return deltas


class ScaleByRms(Transform):
    """RMSprop's direction (Hinton 2012; centred form from Graves 2013, https://arxiv.org/abs/1308.0850).

    ``v <- alpha v + (1 - alpha) u^2``; centred: ``g <- alpha g + (1 - alpha) u`` and
    ``v' = v - g^2``; output ``u / (sqrt(v') + eps)``.
    """

    hyperparameters = {
        "alpha": Hyper(0.99, Real(0.0, 1.0), "smoothing constant of the squared-gradient average"),
        "eps": Hyper(1e-8, NONNEGATIVE, "added to the denominator"),
        "centered": Hyper(False, Flag(), "normalise by an estimate of the gradient's variance"),
    }
    state_keys = ("square_avg", "grad_avg")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        ctx.init_state("square_avg", zeros)
        centered = bool(self.value(ctx, "centered"))
        if centered:
            ctx.init_state("grad_avg", zeros)
        alpha = self.value(ctx, "alpha")
        return Prepared(
            scalars={"alpha": alpha, "one_minus_alpha": 1.0 - alpha, "eps": self.value(ctx, "eps")},
            static={"centered": centered},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        square_avgs = k.state("square_avg")
        ops.mul_(square_avgs, k.scalar("alpha"))
        ops.addcmul_(square_avgs, updates, updates, k.scalar("one_minus_alpha"))
        if k.static("centered"):
            grad_avgs = k.state("grad_avg")
            ops.lerp_(grad_avgs, updates, k.scalar("one_minus_alpha"))
            denominators = ops.addcmul(square_avgs, grad_avgs, grad_avgs, -1.0)
            ops.sqrt_(denominators)
        else:
            denominators = ops.sqrt(square_avgs)
        ops.add_scalar_(denominators, k.scalar("eps"))
        ops.reciprocal_(denominators)
        ops.mul_(denominators, updates)
        return denominators

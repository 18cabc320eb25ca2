"""Per-coordinate step sizes from accumulated squared gradients: AdaGrad, AdaDelta, RMSprop."""

from __future__ import annotations

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Real
from optarena.transforms.base import StepContext, Transform, real_view, zeros


def _filled_like(param: Tensor, value: float) -> Tensor:
    """A tensor like ``param`` whose every real coordinate is ``value``.

    For a complex parameter both the real and the imaginary part start at ``value``
    (torch.optim.Adagrad starts the imaginary part at 0).
    """
    out = torch.zeros_like(param, memory_format=torch.preserve_format)
    real_view(out).fill_(value)
    return out


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

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        start = self.value(ctx, "initial_accumulator_value")
        ctx.init_state("sum", lambda p: _filled_like(p, start))
        sums = ctx.state("sum")
        torch._foreach_addcmul_(sums, updates, updates, 1.0)
        denominators = torch._foreach_sqrt(sums)
        torch._foreach_add_(denominators, self.value(ctx, "eps"))
        lr_decay = self.value(ctx, "lr_decay")
        if lr_decay != 0:
            torch._foreach_mul_(denominators, [1.0 + (t - 1.0) * lr_decay for t in ctx.step_values])
        torch._foreach_reciprocal_(denominators)
        torch._foreach_mul_(denominators, updates)
        ctx.owned = True
        return list(denominators)


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

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        rho, eps = self.value(ctx, "rho"), self.value(ctx, "eps")
        ctx.init_state("square_avg", zeros)
        ctx.init_state("acc_delta", zeros)
        square_avgs, acc_deltas = ctx.state("square_avg"), ctx.state("acc_delta")
        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, updates, updates, 1.0 - rho)
        std = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(std)
        deltas = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(deltas)
        torch._foreach_div_(deltas, std)
        del std
        torch._foreach_mul_(deltas, updates)
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, deltas, deltas, 1.0 - rho)
        ctx.owned = True
        return list(deltas)


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

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        alpha = self.value(ctx, "alpha")
        ctx.init_state("square_avg", zeros)
        square_avgs = ctx.state("square_avg")
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, updates, updates, 1.0 - alpha)
        if self.value(ctx, "centered"):
            ctx.init_state("grad_avg", zeros)
            grad_avgs = ctx.state("grad_avg")
            torch._foreach_lerp_(grad_avgs, updates, 1.0 - alpha)
            denominators = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, -1.0)
            torch._foreach_sqrt_(denominators)
        else:
            denominators = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(denominators, self.value(ctx, "eps"))
        torch._foreach_reciprocal_(denominators)
        torch._foreach_mul_(denominators, updates)
        ctx.owned = True
        return list(denominators)

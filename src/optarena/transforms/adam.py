"""Adam and its direct variants as direction transforms: Adam/AMSGrad, AdaMax, NAdam, RAdam."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Tuple
from optarena.transforms.base import (
    StepContext,
    Transform,
    bias_corrections,
    scalar_dtype,
    scalars,
    sqrt_all,
    zeros,
)

BETAS = Hyper((0.9, 0.999), Tuple((UNIT, UNIT)), "decay rates of the first and second moments")
EPS = Hyper(1e-8, NONNEGATIVE, "added to the denominator")


def _update_moments(updates: list[Tensor], ctx: StepContext, beta1: float, beta2: float):
    """``m <- beta1 m + (1 - beta1) u``; ``v <- beta2 v + (1 - beta2) u^2``; returns (m, v)."""
    ctx.init_state("exp_avg", zeros)
    ctx.init_state("exp_avg_sq", zeros)
    exp_avgs, exp_avg_sqs = ctx.state("exp_avg"), ctx.state("exp_avg_sq")
    torch._foreach_lerp_(exp_avgs, updates, 1.0 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, updates, updates, 1.0 - beta2)
    return exp_avgs, exp_avg_sqs


class ScaleByAdam(Transform):
    """Adam's direction (Kingma & Ba 2014, https://arxiv.org/abs/1412.6980).

    ``m <- beta1 m + (1 - beta1) u``; ``v <- beta2 v + (1 - beta2) u^2``;
    output ``(m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)``. With ``amsgrad``
    (Reddi et al. 2018, https://arxiv.org/abs/1904.09237) ``v`` in the denominator is the
    running maximum of ``v`` (the un-corrected second moment, as torch.optim keeps it).
    """

    hyperparameters = {
        "betas": BETAS,
        "eps": EPS,
        "amsgrad": Hyper(False, Flag(), "use the running maximum of the second moment (AMSGrad)"),
    }
    state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    uses_step = True

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        exp_avgs, second = _update_moments(updates, ctx, beta1, beta2)
        if self.value(ctx, "amsgrad"):
            ctx.init_state("max_exp_avg_sq", zeros)
            maxima = ctx.state("max_exp_avg_sq")
            torch._foreach_maximum_(maxima, second)
            second = maxima
        steps = ctx.step_values
        out = torch._foreach_sqrt(second)
        torch._foreach_div_(out, sqrt_all(bias_corrections(beta2, steps)))
        torch._foreach_add_(out, self.value(ctx, "eps"))
        torch._foreach_mul_(out, bias_corrections(beta1, steps))
        torch._foreach_reciprocal_(out)
        torch._foreach_mul_(out, exp_avgs)
        ctx.owned = True
        return list(out)


class ScaleByAdamax(Transform):
    """AdaMax's direction (Kingma & Ba 2014, section 7, https://arxiv.org/abs/1412.6980).

    ``m <- beta1 m + (1 - beta1) u``; ``r <- max(beta2 r, |u| + eps)``;
    output ``m / ((1 - beta1^t) r)``.
    """

    hyperparameters = {"betas": BETAS, "eps": EPS}
    state_keys = ("exp_avg", "exp_inf")
    uses_step = True

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        ctx.init_state("exp_avg", zeros)
        ctx.init_state("exp_inf", zeros)
        exp_avgs, exp_infs = ctx.state("exp_avg"), ctx.state("exp_inf")
        torch._foreach_lerp_(exp_avgs, updates, 1.0 - beta1)
        torch._foreach_mul_(exp_infs, beta2)
        magnitudes = torch._foreach_abs(updates)
        torch._foreach_add_(magnitudes, self.value(ctx, "eps"))
        torch._foreach_maximum_(exp_infs, magnitudes)
        del magnitudes
        out = torch._foreach_mul(exp_infs, bias_corrections(beta1, ctx.step_values))
        torch._foreach_reciprocal_(out)
        torch._foreach_mul_(out, exp_avgs)
        ctx.owned = True
        return list(out)


class ScaleByNadam(Transform):
    """NAdam's direction (Dozat 2016, https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ).

    Momentum schedule ``mu_t = beta1 (1 - 0.5 * 0.96^(t psi))`` with ``psi = momentum_decay``;
    ``P_t = prod mu_i``; ``d = sqrt(v / (1 - beta2^t)) + eps``; output
    ``(1 - mu_t) / (1 - P_t) * u / d + mu_{t+1} / (1 - P_t mu_{t+1}) * m / d``.
    """

    hyperparameters = {
        "betas": Hyper((0.9, 0.999), Tuple((UNIT, UNIT)), BETAS.doc),
        "eps": EPS,
        "momentum_decay": Hyper(4e-3, NONNEGATIVE, "psi in the momentum schedule"),
    }
    state_keys = ("mu_product", "exp_avg", "exp_avg_sq")
    scalar_state_keys = ("mu_product",)
    uses_step = True

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        psi = self.value(ctx, "momentum_decay")
        ctx.init_state("mu_product", lambda p: torch.ones((), dtype=scalar_dtype(), device=p.device))
        mu_products = [s["mu_product"] for s in ctx.states]
        steps = ctx.step_values
        mus = [beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)) for t in steps]
        mu_nexts = [beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1.0) * psi)) for t in steps]
        torch._foreach_mul_(mu_products, mus)
        products = scalars(mu_products)
        exp_avgs, exp_avg_sqs = _update_moments(updates, ctx, beta1, beta2)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, sqrt_all(bias_corrections(beta2, steps)))
        torch._foreach_add_(denominators, self.value(ctx, "eps"))
        torch._foreach_reciprocal_(denominators)
        out = torch._foreach_mul(updates, [(1.0 - mu) / (1.0 - p) for mu, p in zip(mus, products)])
        torch._foreach_add_(
            out,
            torch._foreach_mul(exp_avgs, [mn / (1.0 - p * mn) for mn, p in zip(mu_nexts, products)]),
        )
        torch._foreach_mul_(out, denominators)
        ctx.owned = True
        return list(out)


class ScaleByRadam(Transform):
    """RAdam's direction (Liu et al. 2019, https://arxiv.org/abs/1908.03265).

    ``rho_inf = 2 / (1 - beta2) - 1``; ``rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)``.
    If ``rho_t > threshold``: output ``r_t * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps)`` with
    ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``;
    otherwise the un-adapted momentum ``m_hat = m / (1 - beta1^t)``. The threshold is 5,
    as in torch.optim and the authors' code (the paper's text says 4).
    """

    hyperparameters = {"betas": BETAS, "eps": EPS}
    state_keys = ("exp_avg", "exp_avg_sq")
    uses_step = True

    def __init__(self, threshold: float = 5.0):
        self.threshold = threshold

    def describe(self) -> str:
        return self.name if self.threshold == 5.0 else f"{self.name}(threshold={self.threshold:g})"

    def rectifications(self, beta2: float, steps: list[float]) -> list[float]:
        """``r_t`` for each step count, 0 where ``rho_t`` is at or below the threshold."""
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        out = []
        for t in steps:
            rho_t = rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)
            if rho_t > self.threshold:
                ratio = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
                out.append(math.sqrt(ratio))
            else:
                out.append(0.0)
        return out

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        beta1, beta2 = (float(b) for b in self.value(ctx, "betas"))
        exp_avgs, exp_avg_sqs = _update_moments(updates, ctx, beta1, beta2)
        steps = ctx.step_values
        corrections1 = bias_corrections(beta1, steps)
        corrections2 = bias_corrections(beta2, steps)
        rects = self.rectifications(beta2, steps)
        out: list[Tensor] = [None] * len(updates)  # type: ignore[list-item]
        plain = [i for i, r in enumerate(rects) if r == 0.0]
        adapted = [i for i, r in enumerate(rects) if r != 0.0]
        if plain:
            scaled = torch._foreach_div([exp_avgs[i] for i in plain], [corrections1[i] for i in plain])
            for i, tensor in zip(plain, scaled):
                out[i] = tensor
        if adapted:
            denominators = torch._foreach_sqrt([exp_avg_sqs[i] for i in adapted])
            torch._foreach_add_(denominators, self.value(ctx, "eps"))
            torch._foreach_mul_(
                denominators, [corrections1[i] / (rects[i] * math.sqrt(corrections2[i])) for i in adapted]
            )
            torch._foreach_reciprocal_(denominators)
            torch._foreach_mul_(denominators, [exp_avgs[i] for i in adapted])
            for i, tensor in zip(adapted, denominators):
                out[i] = tensor
        ctx.owned = True
        return out

"""Adam and its direct variants as direction transforms: Adam/AMSGrad, AdaMax, NAdam, RAdam."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Flag, Hyper, Real, Tuple
from optarena.transforms.base import (
    Kernel,
    Prepared,
    StepContext,
    Transform,
    bias_corrections,
    scalar_dtype,
    scalars,
    zeros,
)
from optarena.transforms.ops import ListOps

BETAS = Hyper((0.9, 0.999), Tuple((UNIT, UNIT)), "decay rates of the first and second moments")
EPS = Hyper(1e-8, NONNEGATIVE, "added to the denominator")
SMA_THRESHOLD = Hyper(
    5.0,
    Real(4.0),
    "rho_t (the length of the approximated simple moving average) above which the adaptive step is used",
)


def moment_scalars(ctx: StepContext, beta1: float, beta2: float) -> dict[str, float]:
    """The weights of the two moment updates, for :func:`update_moments`."""
    return {"one_minus_beta1": 1.0 - beta1, "beta2": beta2, "one_minus_beta2": 1.0 - beta2}


def init_moments(ctx: StepContext) -> None:
    ctx.init_state("exp_avg", zeros)
    ctx.init_state("exp_avg_sq", zeros)


def update_moments(ops: ListOps, updates: list[Tensor], k: Kernel) -> tuple[list[Tensor], list[Tensor]]:
    """``m <- beta1 m + (1 - beta1) u``; ``v <- beta2 v + (1 - beta2) u^2``; returns (m, v)."""
    exp_avgs, exp_avg_sqs = k.state("exp_avg"), k.state("exp_avg_sq")
    ops.lerp_(exp_avgs, updates, k.scalar("one_minus_beta1"))
    ops.mul_(exp_avg_sqs, k.scalar("beta2"))
    ops.addcmul_(exp_avg_sqs, updates, updates, k.scalar("one_minus_beta2"))
    return exp_avgs, exp_avg_sqs


def inverse_sqrt_bias_corrections(beta2: float, steps: list[float]) -> list[float]:
    """``1 / sqrt(1 - beta2^t)`` per tensor: the second moment's bias correction as a factor
    (a product in the kernel costs less than a division)."""
    return [1.0 / math.sqrt(c) for c in bias_corrections(beta2, steps)]


def betas(transform: Transform, ctx: StepContext) -> tuple[float, float]:
    beta1, beta2 = transform.value(ctx, "betas")
    return float(beta1), float(beta2)


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

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        init_moments(ctx)
        amsgrad = bool(self.value(ctx, "amsgrad"))
        if amsgrad:
            ctx.init_state("max_exp_avg_sq", zeros)
        steps = ctx.step_values
        return Prepared(
            scalars={
                **moment_scalars(ctx, beta1, beta2),
                "eps": self.value(ctx, "eps"),
                "bias_correction1": ctx.per_tensor(bias_corrections(beta1, steps)),
                "inv_sqrt_bias_correction2": ctx.per_tensor(inverse_sqrt_bias_corrections(beta2, steps)),
            },
            static={"amsgrad": amsgrad},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, second = update_moments(ops, updates, k)
        if k.static("amsgrad"):
            second = ops.maximum_(k.state("max_exp_avg_sq"), second)
        out = ops.sqrt(second)
        ops.mul_(out, k.scalar("inv_sqrt_bias_correction2"))
        ops.add_scalar_(out, k.scalar("eps"))
        ops.mul_(out, k.scalar("bias_correction1"))
        ops.reciprocal_(out)
        ops.mul_(out, exp_avgs)
        return out


class ScaleByAdamax(Transform):
    """AdaMax's direction (Kingma & Ba 2014, section 7, https://arxiv.org/abs/1412.6980).

    ``m <- beta1 m + (1 - beta1) u``; ``r <- max(beta2 r, |u| + eps)``;
    output ``m / ((1 - beta1^t) r)``.
    """

    hyperparameters = {"betas": BETAS, "eps": EPS}
    state_keys = ("exp_avg", "exp_inf")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        ctx.init_state("exp_avg", zeros)
        ctx.init_state("exp_inf", zeros)
        return Prepared(
            scalars={
                "one_minus_beta1": 1.0 - beta1,
                "beta2": beta2,
                "eps": self.value(ctx, "eps"),
                "bias_correction1": ctx.per_tensor(bias_corrections(beta1, ctx.step_values)),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, exp_infs = k.state("exp_avg"), k.state("exp_inf")
        ops.lerp_(exp_avgs, updates, k.scalar("one_minus_beta1"))
        ops.mul_(exp_infs, k.scalar("beta2"))
        magnitudes = ops.abs(updates)
        ops.add_scalar_(magnitudes, k.scalar("eps"))
        ops.maximum_(exp_infs, magnitudes)
        out = ops.scaled(exp_infs, k.scalar("bias_correction1"))
        ops.reciprocal_(out)
        ops.mul_(out, exp_avgs)
        return out


def nadam_momentum(beta1: float, momentum_decay: float, t: float) -> float:
    """NAdam's momentum schedule at step ``t``: ``mu_t = beta1 (1 - 0.5 * 0.96^(t psi))``."""
    return float(beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay)))


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

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        psi = self.value(ctx, "momentum_decay")
        ctx.init_state("mu_product", lambda p: torch.ones((), dtype=scalar_dtype(), device=p.device))
        init_moments(ctx)
        mu_products = [s["mu_product"] for s in ctx.states]
        steps = ctx.step_values
        mus = [nadam_momentum(beta1, psi, t) for t in steps]
        mu_nexts = [nadam_momentum(beta1, psi, t + 1.0) for t in steps]
        torch._foreach_mul_(mu_products, mus)
        products = scalars(mu_products)
        return Prepared(
            scalars={
                **moment_scalars(ctx, beta1, beta2),
                "eps": self.value(ctx, "eps"),
                "inv_sqrt_bias_correction2": ctx.per_tensor(inverse_sqrt_bias_corrections(beta2, steps)),
                "gradient_weight": ctx.per_tensor([(1.0 - mu) / (1.0 - p) for mu, p in zip(mus, products)]),
                "momentum_weight": ctx.per_tensor([mn / (1.0 - p * mn) for mn, p in zip(mu_nexts, products)]),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, exp_avg_sqs = update_moments(ops, updates, k)
        denominators = ops.sqrt(exp_avg_sqs)
        ops.mul_(denominators, k.scalar("inv_sqrt_bias_correction2"))
        ops.add_scalar_(denominators, k.scalar("eps"))
        ops.reciprocal_(denominators)
        out = ops.scaled(updates, k.scalar("gradient_weight"))
        ops.add_(out, ops.scaled(exp_avgs, k.scalar("momentum_weight")))
        ops.mul_(out, denominators)
        return out


class ScaleByRadam(Transform):
    """RAdam's direction (Liu et al. 2019, https://arxiv.org/abs/1908.03265).

    ``rho_inf = 2 / (1 - beta2) - 1``; ``rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)``.
    If ``rho_t > sma_threshold``: output ``r_t * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps)``
    with ``r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))``;
    otherwise the un-adapted momentum ``m_hat = m / (1 - beta1^t)``. The threshold's default is
    5, as in torch.optim and the authors' code (the paper's text says 4); it must be at least 4,
    below which the rectification is not real. RAdam fixes it (``ScaleByRadam(sma_threshold=5.0)``),
    Ranger reads it from the group.

    Both cases are one formula, ``m * (a / (sqrt(v) + eps) + b)``, with per-tensor
    ``(a, b) = (r_t sqrt(1 - beta2^t) / (1 - beta1^t), 0)`` once rectified and
    ``(0, 1 / (1 - beta1^t))`` before, so the fused path needs no branch.
    """

    hyperparameters = {"betas": BETAS, "eps": EPS, "sma_threshold": SMA_THRESHOLD}
    state_keys = ("exp_avg", "exp_avg_sq")
    uses_step = True

    @staticmethod
    def rectifications(beta2: float, steps: list[float], threshold: float) -> list[float]:
        """``r_t`` for each step count, 0 where ``rho_t`` is at or below ``threshold``."""
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        out = []
        for t in steps:
            rho_t = rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)
            if rho_t > threshold:
                ratio = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
                out.append(math.sqrt(ratio))
            else:
                out.append(0.0)
        return out

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        init_moments(ctx)
        steps = ctx.step_values
        corrections1 = bias_corrections(beta1, steps)
        corrections2 = bias_corrections(beta2, steps)
        rects = self.rectifications(beta2, steps, float(self.value(ctx, "sma_threshold")))
        adaptive = [r * math.sqrt(c2) / c1 if r else 0.0 for r, c1, c2 in zip(rects, corrections1, corrections2)]
        plain = [0.0 if r else 1.0 / c1 for r, c1 in zip(rects, corrections1)]
        return Prepared(
            signals={"rectification": ctx.per_tensor(rects)},
            scalars={
                **moment_scalars(ctx, beta1, beta2),
                "eps": self.value(ctx, "eps"),
                "adaptive": ctx.per_tensor(adaptive),
                "plain": ctx.per_tensor(plain),
            },
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, exp_avg_sqs = update_moments(ops, updates, k)
        out = ops.sqrt(exp_avg_sqs)
        ops.add_scalar_(out, k.scalar("eps"))
        ops.reciprocal_(out)
        ops.mul_(out, k.scalar("adaptive"))
        ops.add_scalar_(out, k.scalar("plain"))
        ops.mul_(out, exp_avgs)
        return out

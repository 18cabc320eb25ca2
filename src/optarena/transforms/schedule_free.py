"""Schedule-Free learning: a gradient step on z and an average x, stepped at their interpolation y.

The parameters hold ``y = (1 - beta) z + beta x`` while training; the state keeps ``z`` (the
plain gradient iterate); ``x``, the average that is evaluated, is not stored: it follows from
``y`` and ``z`` (``x = (y - (1 - beta) z) / beta``), which is how the optimizer's ``eval()``
writes it into the parameters.

The counters are per param group, as in the ``schedulefree`` package: ``k`` (steps taken),
``lr_max`` (largest scheduled learning rate so far), ``weight_sum`` (sum of the averaging
weights), ``scheduled_lr`` (this step's learning rate after warm-up) and ``train_mode``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Hyper, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.learning_rate import LR
from optarena.transforms.lookahead import slow_copy
from optarena.transforms.ops import ListOps

GROUP_KEYS = ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode")
"""Param-group keys the Schedule-Free optimizers keep (the ``schedulefree`` package's names)."""

INTERPOLATION = Real(0.0, 1.0, open_low=True, open_high=True)
"""beta: 0 < beta < 1 (evaluating at x divides by beta)."""
MOMENTUM = Hyper(0.9, INTERPOLATION, "interpolation constant between z and x")
WARMUP = Hyper(0, Real(0.0), "steps of linear learning-rate warm-up")
R = Hyper(0.0, NONNEGATIVE, "power of the step count in the averaging weights")
WEIGHT_LR_POWER = Hyper(2.0, NONNEGATIVE, "power of the largest learning rate so far in the averaging weights")


def momentum_of(group: dict[str, Any], key: str) -> float:
    """The interpolation constant beta: ``betas[0]`` (AdamW) or ``momentum`` (SGD)."""
    value = group[key]
    return float(value[0]) if key == "betas" else float(value)


def counters(group: dict[str, Any]) -> tuple[int, float, float]:
    """``(k, lr, ckp1)`` of this step, read after :meth:`ScheduleFreeAverage.prepare_group` ran:
    ``k`` counts this step, ``lr`` is the scheduled learning rate and ``ckp1`` the weight
    of this step's point in the average."""
    k = int(group["k"])
    lr = float(group["scheduled_lr"])
    weight = (k ** float(group.get("r", 0.0))) * (float(group["lr_max"]) ** float(group.get("weight_lr_power", 2.0)))
    total = float(group["weight_sum"])
    return k, lr, (weight / total if total != 0 else 0.0)


class ScaleByScheduleFreeRms(Transform):
    """Schedule-Free AdamW's normalisation (Defazio et al. 2024, https://arxiv.org/abs/2405.15682).

    ``v <- beta2 v + (1 - beta2) u^2``; output ``u / (sqrt(v / (1 - beta2^k)) + eps)``, with
    ``k`` the group's step count (not the parameter's): no first moment, the averaging
    plays its part.
    """

    hyperparameters = {
        "betas": Hyper(
            (0.9, 0.999),
            Tuple((INTERPOLATION, UNIT)),
            "interpolation constant between z and x (beta1) and second-moment decay (beta2)",
        ),
        "eps": Hyper(1e-8, NONNEGATIVE, "added to the denominator"),
    }
    state_keys = ("exp_avg_sq",)

    def prepare(self, ctx: StepContext) -> Prepared:
        beta2 = float(self.value(ctx, "betas")[1])
        ctx.init_state("exp_avg_sq", zeros)
        k, _, _ = counters(ctx.group)
        return Prepared(
            scalars={
                "beta2": beta2,
                "one_minus_beta2": 1.0 - beta2,
                "inv_sqrt_bias_correction2": 1.0 / math.sqrt(1.0 - beta2**k),
                "eps": self.value(ctx, "eps"),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        second = k.state("exp_avg_sq")
        ops.mul_(second, k.scalar("beta2"))
        ops.addcmul_(second, updates, updates, k.scalar("one_minus_beta2"))
        out = ops.sqrt(second)
        ops.mul_(out, k.scalar("inv_sqrt_bias_correction2"))
        ops.add_scalar_(out, k.scalar("eps"))
        out = ops.div(updates, out)
        return out


class ScheduleFreeAverage(Transform):
    """Schedule-Free's step (Defazio et al. 2024, https://arxiv.org/abs/2405.15682), ending a chain.

    With ``u`` the direction so far, at the group's step ``k`` (1, 2, ...):
    ``lr = lr_0 min(1, k / warmup_steps)``; ``lr_max = max(lr_max, lr)``;
    ``w = k^r lr_max^weight_lr_power``; ``c = w / sum of w so far`` (0 while that sum is 0);
    ``y <- y + c (z - y) + lr (beta (1 - c) - 1) u``; ``z <- z - lr u``. ``z`` (state ``z``)
    starts at the parameter. ``beta`` is the group's ``betas[0]`` or ``momentum``
    (``momentum_key``). The learning rate is part of this step: the chain has no
    ``scale_by_learning_rate``.
    """

    group_keys = GROUP_KEYS
    state_keys = ("z",)

    def __init__(self, momentum_key: str = "betas"):
        if momentum_key not in ("betas", "momentum"):
            raise ValueError(f"momentum_key must be 'betas' or 'momentum', got {momentum_key!r}")
        self.momentum_key = momentum_key
        # this instance declares what its momentum_key makes it read
        self.hyperparameters = {"lr": LR, "warmup_steps": WARMUP, "r": R, "weight_lr_power": WEIGHT_LR_POWER}  # type: ignore[misc]
        if momentum_key == "momentum":
            self.hyperparameters["momentum"] = MOMENTUM

    def describe(self) -> str:
        return self.name if self.momentum_key == "betas" else f"{self.name}({self.momentum_key})"

    def prepare_group(self, group: dict[str, Any], contexts: list[StepContext]) -> None:
        k = int(group.get("k", 0))
        warmup = float(group.get("warmup_steps", 0))
        lr = float(group["lr"]) * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = max(lr, float(group.get("lr_max", -1.0)))
        r, power = float(group.get("r", 0.0)), float(group.get("weight_lr_power", 2.0))
        group["scheduled_lr"] = lr
        group["lr_max"] = lr_max
        group["weight_sum"] = float(group.get("weight_sum", 0.0)) + ((k + 1) ** r) * (lr_max**power)
        group["k"] = k + 1

    def prepare(self, ctx: StepContext) -> Prepared:
        ctx.init_state("z", slow_copy)
        _, lr, ckp1 = counters(ctx.group)
        beta = momentum_of(ctx.group, self.momentum_key)
        return Prepared(scalars={"ckp1": ckp1, "y_step": lr * (beta * (1.0 - ckp1) - 1.0), "neg_lr": -lr})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        z = k.state("z")
        out = ops.added(z, k.params, -1.0)
        ops.mul_(out, k.scalar("ckp1"))
        ops.add_(out, updates, k.scalar("y_step"))
        ops.add_(z, updates, k.scalar("neg_lr"))
        return out

"""Quasi-hyperbolic directions: a weighted average of the plain step and the momentum step.

Ma & Yarats 2018, "Quasi-hyperbolic momentum and Adam for deep learning",
https://arxiv.org/abs/1810.06801.
"""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Hyper, Real, Tuple
from optarena.transforms.adam import BETAS, betas, init_moments, moment_scalars, update_moments
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, bias_corrections, zeros
from optarena.transforms.ops import ListOps, owned

UNIT_CLOSED = Real(0.0, 1.0)


class ScaleByQhm(Transform):
    """QHM's direction: ``b <- momentum b + (1 - momentum) u``; output ``(1 - nu) u + nu b``.

    The buffer is an exponential moving average started at zero (no bias correction), as
    in the paper and the authors' ``qhoptim``; ``nu = 0`` gives the plain update and
    ``nu = 1`` the averaged one.
    """

    hyperparameters = {
        "momentum": Hyper(0.999, UNIT_CLOSED, "beta, the decay rate of the momentum buffer"),
        "nu": Hyper(0.7, Real(), "immediate discount: weight of the momentum buffer against the gradient"),
    }
    state_keys = ("momentum_buffer",)

    def prepare(self, ctx: StepContext) -> Prepared:
        ctx.init_state("momentum_buffer", zeros)
        momentum, nu = self.value(ctx, "momentum"), self.value(ctx, "nu")
        return Prepared(scalars={"one_minus_momentum": 1.0 - momentum, "nu": nu, "one_minus_nu": 1.0 - nu})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        buffers = k.state("momentum_buffer")
        ops.lerp_(buffers, updates, k.scalar("one_minus_momentum"))
        if owned(updates):
            out = ops.mul_(updates, k.scalar("one_minus_nu"))
        else:
            out = ops.scaled(updates, k.scalar("one_minus_nu"))
        return ops.add_(out, buffers, k.scalar("nu"))


class ScaleByQhadam(Transform):
    """QHAdam's direction: Adam's moments, each mixed with the current gradient.

    ``m``, ``v`` as in Adam; with ``m_hat = m / (1 - beta1^t)``, ``v_hat = v / (1 - beta2^t)``
    the output is ``((1 - nu1) u + nu1 m_hat) / (sqrt((1 - nu2) u^2 + nu2 v_hat) + eps)``.
    ``nus = (1, 1)`` is Adam's direction. State as torch.optim.Adam's (``exp_avg``,
    ``exp_avg_sq``, ``step``); the authors' code keeps the bias-corrected moments instead,
    which is the same arithmetic in another order.
    """

    hyperparameters = {
        "betas": Hyper((0.995, 0.999), Tuple((UNIT, UNIT)), BETAS.doc),
        "nus": Hyper(
            (0.7, 1.0),
            Tuple((UNIT_CLOSED, UNIT_CLOSED)),
            "immediate discounts: weights of the two moments against the current gradient",
        ),
        "eps": Hyper(1e-8, NONNEGATIVE, "added to the denominator"),
    }
    state_keys = ("exp_avg", "exp_avg_sq")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        beta1, beta2 = betas(self, ctx)
        nu1, nu2 = (float(nu) for nu in self.value(ctx, "nus"))
        init_moments(ctx)
        steps = ctx.step_values
        return Prepared(
            scalars={
                **moment_scalars(ctx, beta1, beta2),
                "eps": self.value(ctx, "eps"),
                "first_weight": ctx.per_tensor([nu1 / c for c in bias_corrections(beta1, steps)]),
                "second_weight": ctx.per_tensor([nu2 / c for c in bias_corrections(beta2, steps)]),
                "one_minus_nu1": 1.0 - nu1,
                "one_minus_nu2": 1.0 - nu2,
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        exp_avgs, exp_avg_sqs = update_moments(ops, updates, k)
        denominators = ops.scaled(exp_avg_sqs, k.scalar("second_weight"))
        ops.addcmul_(denominators, updates, updates, k.scalar("one_minus_nu2"))
        ops.sqrt_(denominators)
        ops.add_scalar_(denominators, k.scalar("eps"))
        ops.reciprocal_(denominators)
        out = ops.scaled(exp_avgs, k.scalar("first_weight"))
        ops.add_(out, updates, k.scalar("one_minus_nu1"))
        ops.mul_(out, denominators)
        return out

"""The last step of most chains: scale the direction by minus the learning rate."""

from __future__ import annotations

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Hyper
from optarena.transforms.base import StepContext, Transform

LR = Hyper(1e-3, NONNEGATIVE, "learning rate")


class ScaleByLearningRate(Transform):
    """``u <- -lr * u``, with ``lr`` read from the param group at every step.

    When it ends a chain the optimizer folds it into the parameter update
    (``theta <- theta - lr * u`` in one pass) instead of running it separately.
    """

    hyperparameters = {"lr": LR}

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        updates = ctx.writable(updates)
        torch._foreach_mul_(updates, -self.value(ctx, "lr"))
        return updates

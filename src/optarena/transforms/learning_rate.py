"""The last step of most chains: scale the direction by minus the learning rate."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Hyper
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps

LR = Hyper(1e-3, NONNEGATIVE, "learning rate")


class ScaleByLearningRate(Transform):
    """``u <- -lr * u``, with ``lr`` read from the param group at every step.

    When it ends a chain the optimizer folds it into the parameter update
    (``theta <- theta - lr * u`` in one pass) instead of running it separately.
    """

    hyperparameters = {"lr": LR}
    scales_by_learning_rate = True

    def prepare(self, ctx: StepContext) -> Prepared:
        return Prepared(scalars={"neg_lr": -self.value(ctx, "lr")})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        updates = k.writable(ops, updates)
        return ops.mul_(updates, k.scalar("neg_lr"))

    def fold_into(self, ops: ListOps, params: list[Tensor], updates: list[Tensor], k: Kernel) -> None:
        """``theta <- theta - lr * u`` in one operation (the chain's last step, folded)."""
        ops.add_(params, updates, k.scalar("neg_lr"))

    def folded_rates(self, k: Kernel, count: int) -> list[float]:
        """``-lr`` for each of ``count`` tensors (eager path), for a step that folds it tensor
        by tensor (:meth:`optarena.transforms.matrix.MatrixTransform.apply_folded`)."""
        rate = k.scalar("neg_lr")
        return [float(rate[i]) for i in range(count)] if isinstance(rate, (list, tuple)) else [float(rate)] * count

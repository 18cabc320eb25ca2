"""Weight decay as a term added to the update: L2 (coupled) or decoupled, by its position."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps, owned

WEIGHT_DECAY = Hyper(0.0, NONNEGATIVE, "weight decay coefficient")
DECOUPLED = Hyper(False, Flag(), "decay the weights directly (AdamW) instead of adding an L2 gradient")


class AddDecayedWeights(Transform):
    """``u <- u + weight_decay * theta``.

    Placed before a preconditioner it is L2 regularisation (the decay is rescaled with the
    gradient); placed after it, and before the learning rate, it is the decoupled weight
    decay of Loshchilov & Hutter (https://arxiv.org/abs/1711.05101): the update becomes
    ``theta <- theta - lr * (direction + weight_decay * theta)``.

    ``when`` makes the term depend on the group's ``decoupled_weight_decay`` flag:
    ``"coupled"`` applies it only when the flag is false, ``"decoupled"`` only when true,
    ``None`` always.
    """

    hyperparameters = {"weight_decay": WEIGHT_DECAY}

    def __init__(self, when: str | None = None, **fixed: Any):
        if when not in (None, "coupled", "decoupled"):
            raise ValueError(f"when must be None, 'coupled' or 'decoupled', got {when!r}")
        self.when = when
        if when is not None:
            # this instance alone reads the flag that chooses between the two places
            self.hyperparameters = {**self.hyperparameters, "decoupled_weight_decay": DECOUPLED}  # type: ignore[misc]
        super().__init__(**fixed)

    def settings(self) -> list[str]:
        return ([self.when] if self.when else []) + super().settings()

    def prepare(self, ctx: StepContext) -> Prepared:
        decay = self.value(ctx, "weight_decay")
        active = decay != 0
        if active and self.when is not None:
            decoupled = bool(self.value(ctx, "decoupled_weight_decay"))
            active = decoupled == (self.when == "decoupled")
        return Prepared(scalars={"weight_decay": decay}, static={"active": active})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        if not k.static("active"):
            return updates
        if owned(updates):
            return ops.add_(updates, k.params, k.scalar("weight_decay"))
        return ops.added(updates, k.params, k.scalar("weight_decay"))

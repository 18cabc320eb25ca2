"""Lookahead's synchronisation as the last transform of a chain: slow weights in the state."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import Constraint, Hyper, Real
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps


class PositiveInteger(Constraint):
    """An integer of at least 1 (booleans excluded)."""

    def describe(self, name: str) -> str:
        return f"{name} an integer >= 1"

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
            value = int(value.item())
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Invalid {name}: {value!r}; allowed: {self.describe(name)}")


K = Hyper(5, PositiveInteger(), "synchronise with the slow weights every k steps")
ALPHA = Hyper(0.5, Real(0.0, 1.0), "step size of the slow weights towards the fast ones")


def slow_copy(param: torch.Tensor) -> torch.Tensor:
    """The slow weights start at the parameter's value before its first update."""
    return param.detach().clone(memory_format=torch.preserve_format)


class LookaheadSync(Transform):
    """Lookahead (Zhang et al. 2019, https://arxiv.org/abs/1907.08610), Algorithm 1's outer loop.

    Ends a chain whose other transforms already produced the step ``u`` (learning rate
    included), so the fast weights after this step would be ``theta + u``. The slow weights
    ``phi`` (state ``slow_param``) start at the parameter's value before its first update.
    After every ``k``-th update of a parameter: ``phi <- phi + alpha (theta + u - phi)``, and
    the step becomes ``phi - theta``, so the fast weights land on ``phi``; between
    synchronisations ``u`` passes unchanged. The inner state (moments and the like) is kept.

    Counting is per parameter (its ``step``), as Ranger does: a parameter without a
    gradient at some step keeps its own schedule. The fast weights land on ``phi`` to within
    one rounding (``theta + (phi - theta)``).
    """

    hyperparameters = {"k": K, "alpha": ALPHA}
    state_keys = ("slow_param",)
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        period = int(self.value(ctx, "k"))
        alpha = float(self.value(ctx, "alpha"))
        ctx.init_state("slow_param", slow_copy)
        due = [round(t) % period == 0 for t in ctx.step_values]
        if not any(due):
            return Prepared(static={"mode": "none"})
        if all(due):
            return Prepared(scalars={"alpha": alpha}, static={"mode": "all"})
        return Prepared(
            scalars={
                "alpha": ctx.per_tensor([alpha if d else 0.0 for d in due]),
                "keep": ctx.per_tensor([0.0 if d else 1.0 for d in due]),
                "reset": ctx.per_tensor([1.0 if d else 0.0 for d in due]),
            },
            static={"mode": "some"},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        mode = k.static("mode")
        if mode == "none":
            return updates
        slow = k.state("slow_param")
        if k.recording:  # how far the fast weights went from the slow ones before the pull back
            k.report("lookahead_distance", ops.norm(ops.added(ops.added(k.params, updates), slow, -1.0)))
        ops.lerp_(slow, ops.added(k.params, updates), k.scalar("alpha"))
        to_slow = ops.added(slow, k.params, -1.0)
        if mode == "all":
            return to_slow
        # per tensor: u where not due (keep 1, reset 0), phi - theta where due (keep 0, reset 1)
        out = ops.scaled(updates, k.scalar("keep"))
        return ops.add_(out, to_slow, k.scalar("reset"))

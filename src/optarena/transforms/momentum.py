"""Heavy-ball and Nesterov momentum with torch.optim.SGD's buffer semantics."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, zeros
from optarena.transforms.ops import ListOps, owned


class Trace(Transform):
    """Momentum buffer ``b``: first step ``b = u``, then ``b <- momentum * b + (1 - dampening) * u``.

    Output ``u + momentum * b`` with ``nesterov`` (Sutskever et al. 2013's form), else ``b``.
    Inactive (and keeps no state) while ``momentum == 0``. Groups that lack ``dampening`` or
    ``nesterov`` read them as 0 and False, so RMSprop reuses it for its momentum.

    A new buffer starts at zero and takes the update with weights (0, 1), which gives
    ``b = u`` exactly, without a branch the fused path could not compile.
    """

    hyperparameters = {
        "momentum": Hyper(0.0, NONNEGATIVE, "momentum factor"),
        "dampening": Hyper(0.0, NONNEGATIVE, "dampening of the gradient in the momentum buffer"),
        "nesterov": Hyper(False, Flag(), "use Nesterov momentum"),
    }
    state_keys = ("momentum_buffer",)

    def prepare(self, ctx: StepContext) -> Prepared:
        momentum = self.value(ctx, "momentum")
        if momentum == 0:
            return Prepared(static={"active": False})
        fresh = set(ctx.missing("momentum_buffer"))
        ctx.init_state("momentum_buffer", zeros)
        take = 1.0 - self.value(ctx, "dampening")
        n = len(ctx.states)
        return Prepared(
            scalars={
                "momentum": momentum,
                "keep": ctx.per_tensor([0.0 if i in fresh else momentum for i in range(n)]),
                "take": ctx.per_tensor([1.0 if i in fresh else take for i in range(n)]),
            },
            static={"active": True, "nesterov": bool(self.value(ctx, "nesterov"))},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        if not k.static("active"):
            return updates
        buffers = k.state("momentum_buffer")
        ops.mul_(buffers, k.scalar("keep"))
        ops.add_(buffers, updates, k.scalar("take"))
        if k.static("nesterov"):
            if owned(updates):
                return ops.add_(updates, buffers, k.scalar("momentum"))
            return ops.added(updates, buffers, k.scalar("momentum"))
        return buffers

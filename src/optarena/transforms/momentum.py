"""Heavy-ball and Nesterov momentum with torch.optim.SGD's buffer semantics."""

from __future__ import annotations

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper
from optarena.transforms.base import StepContext, Transform


class Trace(Transform):
    """Momentum buffer ``b``: first step ``b = u``, then ``b <- momentum * b + (1 - dampening) * u``.

    Output ``u + momentum * b`` with ``nesterov`` (Sutskever et al. 2013's form), else ``b``.
    Inactive (and keeps no state) while ``momentum == 0``. Groups that lack ``dampening`` or
    ``nesterov`` read them as 0 and False, so RMSprop reuses it for its momentum.
    """

    hyperparameters = {
        "momentum": Hyper(0.0, NONNEGATIVE, "momentum factor"),
        "dampening": Hyper(0.0, NONNEGATIVE, "dampening of the gradient in the momentum buffer"),
        "nesterov": Hyper(False, Flag(), "use Nesterov momentum"),
    }
    state_keys = ("momentum_buffer",)

    def update(self, updates: list[Tensor], ctx: StepContext) -> list[Tensor]:
        momentum = self.value(ctx, "momentum")
        if momentum == 0:
            return updates
        dampening = self.value(ctx, "dampening")
        fresh = set(ctx.missing("momentum_buffer"))
        for i in fresh:
            ctx.set_state(i, "momentum_buffer", updates[i].clone())
        buffers = ctx.state("momentum_buffer")
        if len(fresh) < len(buffers):
            old = [b for i, b in enumerate(buffers) if i not in fresh]
            new = [u for i, u in enumerate(updates) if i not in fresh]
            torch._foreach_mul_(old, momentum)
            torch._foreach_add_(old, new, alpha=1.0 - dampening)
        if self.value(ctx, "nesterov"):
            if ctx.owned:
                torch._foreach_add_(updates, buffers, alpha=momentum)
                return updates
            ctx.owned = True
            return list(torch._foreach_add(updates, buffers, alpha=momentum))
        ctx.owned = False
        return buffers

"""Rprop's direction: per-coordinate step sizes adapted from gradient signs alone."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Hyper, Real, Tuple
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform, filled_like, zeros
from optarena.transforms.ops import ListOps


class ScaleByRprop(Transform):
    """Resilient backpropagation (Riedmiller & Braun 1993, https://doi.org/10.1109/ICNN.1993.298623).

    Each coordinate keeps its own step size ``s`` (starting at ``lr``) and the previous
    gradient ``prev``. With ``q = sign(g * prev)``: ``s <- clamp(s * etaplus, ., max)`` where
    ``q > 0``, ``s <- clamp(s * etaminus, min, .)`` and ``g <- 0`` where ``q < 0`` (the sign
    flipped: no move, and no adaptation on the next step); ``s`` unchanged where ``q = 0``.
    Output ``-sign(g) * s`` (the parameter change; the learning rate is only the initial
    step size, as in torch.optim.Rprop); then ``prev <- g``.

    The sign cases are selected from ``g * prev`` directly (:meth:`ListOps.select_by_sign`,
    :meth:`ListOps.zero_where_negative`): two selections per element, no sign taken first.
    """

    hyperparameters = {
        "lr": Hyper(1e-2, NONNEGATIVE, "initial step size of every coordinate"),
        "etas": Hyper(
            (0.5, 1.2),
            Tuple((Real(0.0, 1.0, open_low=True, open_high=True), Real(1.0, open_low=True)), label="eta values"),
            "(etaminus, etaplus): step-size factors after a sign flip and after a repeated sign",
        ),
        "step_sizes": Hyper((1e-6, 50.0), Tuple((NONNEGATIVE, NONNEGATIVE)), "(minimum, maximum) step size"),
    }
    state_keys = ("prev", "step_size")
    uses_step = True

    def prepare(self, ctx: StepContext) -> Prepared:
        lr = self.value(ctx, "lr")
        ctx.init_state("prev", zeros)
        ctx.init_state("step_size", lambda p: filled_like(p, lr))
        etaminus, etaplus = self.value(ctx, "etas")
        smallest, largest = self.value(ctx, "step_sizes")
        return Prepared(
            scalars={
                "etaminus": float(etaminus),
                "etaplus": float(etaplus),
                "step_size_min": float(smallest),
                "step_size_max": float(largest),
            }
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        prevs, step_sizes = k.state("prev"), k.state("step_size")
        agreement = ops.product(updates, prevs)
        ops.mul_(step_sizes, ops.select_by_sign(agreement, k.scalar("etaminus"), 1.0, k.scalar("etaplus")))
        ops.clamp_(step_sizes, k.scalar("step_size_min"), k.scalar("step_size_max"))
        kept = ops.zero_where_negative(updates, agreement)  # no move where the sign flipped
        ops.copy_(prevs, kept)
        out = ops.sign(kept)
        ops.mul_(out, step_sizes)
        ops.mul_(out, -1.0)
        return out

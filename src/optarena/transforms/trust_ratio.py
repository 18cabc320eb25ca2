"""Layer-wise trust ratios: each tensor's step scaled by how large the tensor is.

Two forms from the large-batch literature, both per tensor (not elementwise: a tensor's
update depends on the norms of the whole tensor):

- :class:`ScaleByTrustRatio`, LAMB's (You et al. 2019, https://arxiv.org/abs/1904.00962):
  the incoming update ``u`` (for LAMB, Adam's direction plus decoupled decay) is rescaled
  to ``||theta|| / ||u||`` times itself.
- :class:`ScaleByLars`, LARS's (You, Gitman & Ginsburg 2017,
  https://arxiv.org/abs/1708.03888): the gradient plus L2 decay is scaled by the local
  learning rate ``eta ||theta|| / (||g|| + weight_decay ||theta|| + eps)``.

Both fall back to a ratio of 1 where a norm is 0 (a parameter initialised at zero, or a
zero gradient), and both can be switched off per param group with
``layer_adaptation=False``, the torch way of excluding biases and normalisation layers.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, Flag, Hyper, Optional, Real
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps, owned
from optarena.transforms.weight_decay import WEIGHT_DECAY

MAX_TRUST_RATIO = Hyper(
    None,
    Optional(Real(0.0, open_low=True)),
    "cap on the trust ratio (the Paratrooper clamp); None leaves it uncapped",
)
LAYER_ADAPTATION = Hyper(
    True,
    Flag(),
    "scale this group's steps by the layer-wise trust ratio (False for biases and norm layers, say)",
)


class ScaleByTrustRatio(Transform):
    """``u <- r u`` per tensor, with ``r = ||theta|| / ||u||``, and ``r = 1`` where a norm is 0.

    ``param_norm_range=(low, high)`` (fixed at construction) clamps ``||theta||`` to
    ``[low, high]`` before the ratio (the widely used LAMB code clamps to ``[0, 10]``); the
    zero test then applies to the clamped norm. ``max_trust_ratio`` caps the ratio itself
    (None: no cap); LAMB fixes it at None, RangerLARS reads it from the group.

    Inactive in groups with ``layer_adaptation=False``. Not elementwise, so complex
    parameters are refused.
    """

    hyperparameters = {"layer_adaptation": LAYER_ADAPTATION, "max_trust_ratio": MAX_TRUST_RATIO}
    elementwise = False
    needs_shape = False  # whole-tensor norms: flattened tensors give the same numbers

    def __init__(self, param_norm_range: tuple[float, float] | None = None, **fixed: Any):
        if param_norm_range is not None:
            try:
                low, high = (float(v) for v in param_norm_range)
            except (TypeError, ValueError):
                raise ValueError(
                    f"param_norm_range must be a pair (low, high) of numbers, got {param_norm_range!r}"
                ) from None
            if math.isnan(low) or math.isnan(high) or not 0.0 <= low <= high:
                raise ValueError(f"Invalid param_norm_range: {param_norm_range!r}; allowed: 0 <= low <= high")
            param_norm_range = (low, high)
        self.param_norm_range = param_norm_range
        super().__init__(**fixed)

    def settings(self) -> list[str]:
        shown = []
        if self.param_norm_range is not None:
            shown.append("param_norm_range=({:g}, {:g})".format(*self.param_norm_range))
        return shown + super().settings()

    def prepare(self, ctx: StepContext) -> Prepared:
        cap = self.value(ctx, "max_trust_ratio")
        return Prepared(
            scalars={} if cap is None else {"max_trust_ratio": float(cap)},
            static={"active": bool(self.value(ctx, "layer_adaptation")), "capped": cap is not None},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        if not k.static("active"):
            return updates
        param_norms, update_norms = ops.norms_alongside(k.params, updates)
        if self.param_norm_range is not None:
            ops.clamp_(param_norms, *self.param_norm_range)
        ratios = ops.ratio_or(param_norms, update_norms, 1.0)
        if k.static("capped"):
            ops.clamp_(ratios, high=k.scalar("max_trust_ratio"))
        k.report("trust_ratio", ratios)
        updates = k.writable(ops, updates)
        return ops.mul_(updates, ops.materialize(ratios))


class ScaleByLars(Transform):
    """LARS's local learning rate applied to the gradient plus L2 decay.

    ``u <- lambda (u + weight_decay theta)`` per tensor, with
    ``lambda = trust_coefficient ||theta|| / (||u|| + weight_decay ||theta|| + eps)``, and
    ``lambda = 1`` where ``||theta||`` or ``||u||`` is 0. With ``layer_adaptation=False``
    (per group) it is ``u + weight_decay theta`` alone. Not elementwise, so complex
    parameters are refused.
    """

    hyperparameters = {
        "weight_decay": WEIGHT_DECAY,
        "trust_coefficient": Hyper(1e-3, Real(0.0, open_low=True), "eta, the trust coefficient of the local lr"),
        "eps": Hyper(0.0, NONNEGATIVE, "added to the denominator of the local lr"),
        "layer_adaptation": LAYER_ADAPTATION,
    }
    elementwise = False
    needs_shape = False  # whole-tensor norms: flattened tensors give the same numbers

    def prepare(self, ctx: StepContext) -> Prepared:
        decay = self.value(ctx, "weight_decay")
        return Prepared(
            scalars={
                "weight_decay": decay,
                "trust_coefficient": self.value(ctx, "trust_coefficient"),
                "eps": self.value(ctx, "eps"),
            },
            static={"decay": decay != 0, "adapt": bool(self.value(ctx, "layer_adaptation"))},
        )

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        local: list[Tensor] | None = None
        if k.static("adapt"):
            param_norms, grad_norms = ops.norms_alongside(k.params, updates)
            denominators = ops.added(grad_norms, param_norms, k.scalar("weight_decay"))
            ops.add_scalar_(denominators, k.scalar("eps"))
            local = ops.scaled(param_norms, k.scalar("trust_coefficient"))
            ops.div_(local, denominators)
            local = ops.materialize(ops.where_positive(local, [param_norms, grad_norms], 1.0))
            k.report("trust_ratio", local)
        if k.static("decay"):
            if owned(updates):
                ops.add_(updates, k.params, k.scalar("weight_decay"))
            else:
                updates = ops.added(updates, k.params, k.scalar("weight_decay"))
        if local is None:
            return updates
        updates = k.writable(ops, updates)
        return ops.mul_(updates, local)

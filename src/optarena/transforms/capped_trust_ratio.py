"""LAMB's trust ratio with an optional cap read from the param group."""

from __future__ import annotations

from optarena.hyperparameters import Hyper, Optional, Real
from optarena.transforms.base import Prepared, StepContext
from optarena.transforms.trust_ratio import ScaleByTrustRatio

MAX_TRUST_RATIO = Hyper(
    None,
    Optional(Real(0.0, open_low=True)),
    "cap on the trust ratio (the Paratrooper clamp); None leaves it uncapped",
)


class ScaleByCappedTrustRatio(ScaleByTrustRatio):
    """:class:`ScaleByTrustRatio` whose ratio is capped at the group's ``max_trust_ratio``.

    ``u <- min(r, max_trust_ratio) u`` per tensor, ``r = ||theta|| / ||u||`` as in LAMB
    (with ``||theta||`` clamped to ``param_norm_range`` when given, and ``r = 1`` where a norm
    is 0); no cap while ``max_trust_ratio`` is None. A per-group value, so a scheduler or a
    param group can change it.
    """

    hyperparameters = {**ScaleByTrustRatio.hyperparameters, "max_trust_ratio": MAX_TRUST_RATIO}

    def __init__(self, param_norm_range: tuple[float, float] | None = None):
        super().__init__(param_norm_range=param_norm_range)

    def describe(self) -> str:
        options = []
        if self.param_norm_range is not None:
            options.append("param_norm_range=({:g}, {:g})".format(*self.param_norm_range))
        options.append("max_ratio=max_trust_ratio")
        return f"{self.name}({', '.join(options)})"

    def prepare(self, ctx: StepContext) -> Prepared:
        prepared = super().prepare(ctx)
        cap = self.value(ctx, "max_trust_ratio")
        prepared.static["capped"] = cap is not None
        if cap is not None:
            prepared.scalars["max_trust_ratio"] = float(cap)
        return prepared

    def cap(self, ops, ratios, k):
        if k.static("capped"):
            ops.clamp_(ratios, high=k.scalar("max_trust_ratio"))
        return ratios

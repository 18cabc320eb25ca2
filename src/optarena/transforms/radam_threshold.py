"""RAdam's direction with the rectification threshold read from the param group."""

from __future__ import annotations

from optarena.hyperparameters import Hyper, Real
from optarena.transforms.adam import ScaleByRadam
from optarena.transforms.base import Prepared, StepContext

SMA_THRESHOLD = Hyper(
    5.0,
    Real(4.0),
    "rho_t (the length of the approximated simple moving average) above which the adaptive step is used",
)


class ScaleByRadamThreshold(ScaleByRadam):
    """:class:`ScaleByRadam` whose threshold on ``rho_t`` is the group's ``sma_threshold``.

    Ranger exposes the threshold as an argument (its default 5 is torch.optim's; the RAdam
    paper's text says 4). It must be at least 4: below that the rectification
    ``sqrt((rho_t - 4)(rho_t - 2) ...)`` is not real.
    """

    hyperparameters = {**ScaleByRadam.hyperparameters, "sma_threshold": SMA_THRESHOLD}

    def __init__(self):
        super().__init__()

    def describe(self) -> str:
        return "scale_by_radam(threshold=sma_threshold)"

    def prepare(self, ctx: StepContext) -> Prepared:
        return ScaleByRadam(float(self.value(ctx, "sma_threshold"))).prepare(ctx)

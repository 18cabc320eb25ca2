"""Cautious AdamW: AdamW with the cautious mask."""

from __future__ import annotations

from optarena.optim.adamw import AdamW
from optarena.optim.lion import CAUTIOUS_PAPER
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, configs, errors
from optarena.transforms import AddDecayedWeights, CautiousMask, ScaleByAdam, ScaleByLearningRate, Transform


class CautiousAdamW(AdamW):
    """Cautious AdamW: AdamW whose update keeps only the entries that agree in sign with the gradient.

    Update rule::

        u = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)     (as AdamW)
        phi = 1[u * g > 0];  u = u * phi * n / max(sum(phi), 1)      (n: entries of the tensor)
        theta = theta - lr * (u + weight_decay * theta)

    The mask compares the momentum's direction with the current gradient; the decay is not
    masked.
    """

    paper = CAUTIOUS_PAPER

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByAdam(), CautiousMask(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "cautious_adamw",
        CautiousAdamW,
        TestPlan(
            configs({}, ("decay-betas-eps", {"weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6})),
            errors(COMMON_ERRORS, BETA_ERRORS),
            reference_state_loads=False,
            complex=False,
            constant_ops=False,
        ),
        second_pass=("grad", "state"),  # the mask's count comes before the update is applied
    ),
)

"""QHAdam: Adam with each moment averaged with the current gradient (quasi-hyperbolic)."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer
from optarena.optim.qhm import QH_PAPER
from optarena.search_space import LogUniform, SearchSpace, Uniform
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleByQhadam, Transform


class QHAdam(NamedOptimizer):
    """QHAdam: Adam whose moments are each mixed with the current gradient by nu1, nu2.

    Update rule::

        g = grad + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t)
        d = ((1 - nu1) * g + nu1 * m_hat) / (sqrt((1 - nu2) * g^2 + nu2 * v_hat) + eps)
        theta = theta - lr * d

    ``nus = (1, 1)`` is Adam. The defaults are the paper's recommendation; the authors'
    ``qhoptim`` defaults to ``betas=(0.9, 0.999), nus=(1.0, 1.0)``, which is Adam.
    """

    paper = QH_PAPER
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "nus[0]": Uniform(0.0, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.995, 0.999),
        nus: tuple[float, float] = (0.7, 1.0),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            nus=nus,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByQhadam(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "qhadam",
        QHAdam,
        TestPlan(
            configs(
                {},
                ("l2-decay", {"weight_decay": 0.1}),
                ("adam-nus-eps", {"betas": (0.9, 0.99), "nus": (1.0, 1.0), "eps": 1e-6}),
                ("nus-decay", {"nus": (0.5, 0.8), "weight_decay": 0.05}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [({"nus": (1.5, 1.0)}, "nus[0] value: 1.5; allowed range: 0 <= nus[0] <= 1")],
            ),
            reference_complex=False,
            reference_state_loads=False,
        ),
        peers=(
            LibraryPeer("torch-optimizer", "QHAdam", pick("lr", "betas", "nus", "weight_decay", "eps")),
            LibraryPeer("pytorch-optimizer", "QHAdam", pick("lr", "betas", "nus", "weight_decay", "eps")),
        ),
    ),
)

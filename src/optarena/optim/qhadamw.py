"""QHAdamW: QHAdam with weight decay decoupled from the gradient."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer
from optarena.optim.qhm import QH_PAPER
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleByQhadam, Transform


class QHAdamW(NamedOptimizer):
    """QHAdamW: QHAdam with decoupled weight decay, as AdamW is to Adam.

    Update rule::

        m, v, m_hat, v_hat as in QHAdam, on the raw gradient
        d = ((1 - nu1) * grad + nu1 * m_hat) / (sqrt((1 - nu2) * grad^2 + nu2 * v_hat) + eps)
        theta = theta - lr * (d + weight_decay * theta)

    The decay is scaled by the learning rate, as in ``qhoptim``'s QHAdamW (which writes it
    ``theta * (1 - lr * weight_decay)`` before the step) and torch.optim.AdamW. The default
    ``weight_decay`` is AdamW's 1e-2; ``qhoptim``'s is 0.
    """

    paper = QH_PAPER
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "weight_decay": LogUniform(1e-4, 0.5)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.995, 0.999),
        nus: tuple[float, float] = (0.7, 1.0),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
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
        return [ScaleByQhadam(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "qhadamw",
        QHAdamW,
        TestPlan(
            configs(
                {},
                ("decay-nus-betas", {"weight_decay": 0.1, "nus": (0.8, 0.9), "betas": (0.9, 0.999)}),
                ("no-decay", {"weight_decay": 0.0}),
            ),
            errors(COMMON_ERRORS, BETA_ERRORS, [({"nus": (0.7, -0.1)}, "nus[1] value: -0.1")]),
            reference_complex=False,
            reference_state_loads=False,
        ),
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "QHAdam",
                lambda hp: {**pick("lr", "betas", "nus", "weight_decay", "eps")(hp), "decouple_weight_decay": True},
            ),
            LibraryPeer(
                "pytorch-optimizer",
                "QHAdam",
                lambda hp: {**pick("lr", "betas", "nus", "weight_decay", "eps")(hp), "weight_decouple": True},
            ),
        ),
    ),
)

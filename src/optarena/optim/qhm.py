"""QHM: quasi-hyperbolic momentum, an average of a plain SGD step and a momentum step."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace, Uniform
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleByQhm, Transform

QH_PAPER = Paper(
    "Ma & Yarats", 2018, "Quasi-hyperbolic momentum and Adam for deep learning", "https://arxiv.org/abs/1810.06801"
)


class QHM(NamedOptimizer):
    """QHM: a weighted average of the plain SGD step and an averaged-momentum step.

    Update rule::

        g = grad + weight_decay * theta
        b = momentum * b + (1 - momentum) * g        (b starts at 0)
        theta = theta - lr * ((1 - nu) * g + nu * b)

    ``nu = 0`` is SGD; ``nu = 1`` is momentum with the buffer as an exponential moving
    average (torch.optim.SGD with ``dampening = momentum``, started from a zero buffer).
    The buffer is damped, so plain momentum (lr, beta) corresponds to QHM with lr / (1 - beta).
    The paper's rule of thumb is ``nu = 0.7, momentum = 0.999``. ``lr``, ``momentum`` and
    ``nu`` have no defaults, as in the authors' ``qhoptim``.
    """

    paper = QH_PAPER
    foreign_group_keys = {"weight_decay_type": "grad"}
    """qhoptim's QHM state dicts load when their weight decay is the gradient's (ours)."""
    search_space = SearchSpace(
        {"lr": LogUniform(1e-3, 3.0), "momentum": OneMinusLogUniform(0.5, 0.999), "nu": Uniform(0.0, 1.0)}
    )

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float,
        nu: float,
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
            momentum=momentum,
            nu=nu,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByQhm(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "qhm",
        QHM,
        TestPlan(
            configs(
                ("minimum", {"lr": 0.1, "momentum": 0.9, "nu": 0.7}),
                ("slow-momentum-decay", {"lr": 0.1, "momentum": 0.999, "nu": 0.7, "weight_decay": 0.1}),
                ("nu-above-one", {"lr": 0.05, "momentum": 0.5, "nu": 1.3}),
                ("plain-sgd-decay", {"lr": 0.1, "momentum": 0.9, "nu": 0.0, "weight_decay": 0.01}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"momentum": 1.5}, "momentum value: 1.5; allowed range: 0 <= momentum <= 1"),
                    ({"nu": float("nan")}, "nu value: nan"),
                    ({"weight_decay": -1}, "weight_decay value: -1"),
                ],
            ),
            descent_lr=0.05,
        ),
        settings={"lr": 0.1, "momentum": 0.999, "nu": 0.7},  # the paper's advice
        peers=(
            LibraryPeer("torch-optimizer", "QHM", pick("lr", "momentum", "nu", "weight_decay")),
            LibraryPeer("pytorch-optimizer", "QHM", pick("lr", "momentum", "nu", "weight_decay")),
        ),
    ),
)

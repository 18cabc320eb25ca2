"""AdaDelta, as torch.optim.Adadelta."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdadelta, ScaleByLearningRate, Transform


class Adadelta(NamedOptimizer):
    """AdaDelta: steps in units of the parameter, from running averages of g^2 and of step^2.

    Update rule::

        g = grad + weight_decay * theta
        v = rho * v + (1 - rho) * g^2
        d = sqrt(a + eps) / sqrt(v + eps) * g
        a = rho * a + (1 - rho) * d^2
        theta = theta - lr * d
    """

    paper = Paper("Zeiler", 2012, "ADADELTA: An Adaptive Learning Rate Method", "https://arxiv.org/abs/1212.5701")
    search_space = SearchSpace({"lr": LogUniform(1e-2, 10.0), "rho": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            capturable=capturable,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByAdadelta(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "adadelta",
        Adadelta,
        TestPlan(
            configs({}, ("rho-eps-decay", {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1})),
            errors(COMMON_ERRORS, [({"rho": 1.5}, "rho value: 1.5; allowed range: 0 <= rho <= 1")]),
            descent_lr=1.0,
        ),
        peers=(
            TorchPeer("Adadelta", pick("lr", "rho", "eps", "weight_decay")),
            LibraryPeer("pytorch-optimizer", "AdaDelta", pick("lr", "rho", "eps", "weight_decay")),
        ),
    ),
)

"""AdaMax, as torch.optim.Adamax."""

from __future__ import annotations

from typing import Any

from optarena.optim.adam import ADAM_PAPER
from optarena.optim.base import NamedOptimizer
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdamax, ScaleByLearningRate, Transform


class Adamax(NamedOptimizer):
    """AdaMax: Adam with the infinity norm in place of the root mean square.

    Update rule::

        g = grad + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        theta = theta - lr / (1 - beta1^t) * m / u
    """

    paper = ADAM_PAPER
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByAdamax(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "adamax",
        Adamax,
        TestPlan(
            configs({}, ("decay-betas", {"weight_decay": 0.1, "betas": (0.8, 0.99)})),
            errors(COMMON_ERRORS, BETA_ERRORS),
        ),
        peers=(
            TorchPeer("Adamax", pick("lr", "betas", "eps", "weight_decay")),
            LibraryPeer("pytorch-optimizer", "AdaMax", pick("lr", "betas", "eps", "weight_decay")),
        ),
    ),
)

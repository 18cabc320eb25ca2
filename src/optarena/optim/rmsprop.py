"""RMSprop, as torch.optim.RMSprop."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import (
    AddDecayedWeights,
    ScaleByLearningRate,
    ScaleByRms,
    Trace,
    Transform,
)


class RMSprop(NamedOptimizer):
    """RMSprop: divide the gradient by a running root-mean-square of recent gradients.

    Update rule::

        g = grad + weight_decay * theta
        v = alpha * v + (1 - alpha) * g^2
        centered:  a = alpha * a + (1 - alpha) * g;  v' = v - a^2   (else v' = v)
        d = g / (sqrt(v') + eps)
        with momentum: b = momentum * b + d; d = b
        theta = theta - lr * d
    """

    paper = Paper(
        "Tieleman & Hinton",
        2012,
        "Lecture 6.5, rmsprop: Divide the gradient by a running average of its recent magnitude "
        "(centred form: Graves 2013, arXiv:1308.0850)",
        "https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "alpha": OneMinusLogUniform(0.9, 0.999)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByRms(), Trace(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "rmsprop",
        RMSprop,
        TestPlan(
            configs(
                {},
                ("centered", {"centered": True}),
                ("momentum-decay", {"momentum": 0.8, "weight_decay": 0.1}),
                ("centered-momentum-alpha", {"centered": True, "momentum": 0.5, "alpha": 0.9}),
            ),
            errors(COMMON_ERRORS, [({"alpha": -0.1}, "alpha value: -0.1"), ({"momentum": -1}, "momentum value: -1")]),
        ),
        peers=(TorchPeer("RMSprop", pick("lr", "alpha", "eps", "weight_decay", "momentum", "centered")),),
    ),
)

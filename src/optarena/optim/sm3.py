"""SM3: memory-efficient AdaGrad with one accumulator per dimension of each tensor."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import ScaleByLearningRate, Transform
from optarena.transforms.sm3 import ScaleBySm3


class SM3(NamedOptimizer):
    """SM3: AdaGrad whose sums of squares are covered by row, column (per-dimension) maxima.

    Update rule::

        nu = min_d mu_d + g^2                 (beta > 0: beta * min_d mu_d + (1 - beta) * g^2)
        mu_d = max of nu over the dimensions other than d     (m + n numbers for an m x n matrix)
        u = g / sqrt(nu + eps)  where nu > 0, else 0
        b = momentum * b + (1 - momentum) * u  (momentum > 0; else b = u)
        theta = theta - lr * b

    The constructor is the ``torch-sm3`` package's (``lr=0.1, momentum=0.0, beta=0.0,
    eps=1e-30``); ``optax.sm3(learning_rate, momentum)`` is ``SM3(lr=learning_rate,
    momentum=momentum, eps=1e-8)``. A vector's (and a scalar's) accumulator is full (AdaGrad);
    a tensor of ``k`` dimensions keeps ``k`` accumulators. Complex parameters are not supported.
    """

    paper = Paper(
        "Anil, Gupta, Koren & Singer",
        2019,
        "Memory-Efficient Adaptive Optimization",
        "https://arxiv.org/abs/1901.11150",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-3, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 0.1,
        momentum: float = 0.0,
        beta: float = 0.0,
        eps: float = 1e-30,
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
            beta=beta,
            eps=eps,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleBySm3(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "sm3",
        SM3,
        TestPlan(
            configs(
                {}, ("momentum", {"momentum": 0.9}), ("lr-momentum-eps", {"lr": 0.05, "momentum": 0.5, "eps": 1e-8})
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"momentum": 1.0}, "momentum value: 1.0; allowed range: 0 <= momentum < 1"),
                    ({"beta": -0.1}, "beta value: -0.1"),
                    ({"eps": -1.0}, "epsilon value: -1.0"),
                ],
            ),
            complex=False,
            constant_ops=False,
            descent_lr=0.5,
            fusable=False,  # per-dimension maxima of each tensor, eagerly
            reference_state_loads=False,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer", "SM3", pick("lr", "momentum", "beta", "eps"), "the torch-sm3 package's code"
            ),
        ),
        second_pass=("param", "grad"),
    ),
)

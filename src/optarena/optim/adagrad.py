"""AdaGrad, as torch.optim.Adagrad."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper, arguments
from optarena.search_space import LogUniform, SearchSpace
from optarena.transforms import AddDecayedWeights, ScaleByAdagrad, ScaleByLearningRate


class Adagrad(NamedOptimizer):
    """AdaGrad: per-coordinate steps shrinking with the accumulated squared gradients.

    Update rule::

        g = grad + weight_decay * theta
        s = s + g^2                                   (s starts at initial_accumulator_value)
        theta = theta - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
    """

    paper = Paper(
        "Duchi, Hazan & Singer",
        2011,
        "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
        "https://jmlr.org/papers/v12/duchi11a.html",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(params, **arguments(locals()))

    @classmethod
    def chain(cls):
        return [AddDecayedWeights(), ScaleByAdagrad(), ScaleByLearningRate()]

"""Prodigy and D-Adaptation Adam: Adam with the learning rate estimated from the group's gradients."""

from __future__ import annotations

import math
from typing import Any

from optarena.optim.base import NamedOptimizer, Paper, arguments
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.transforms import AddDecayedWeights, ScaleByDAdaptAdam, ScaleByProdigy


class Prodigy(NamedOptimizer):
    """Prodigy: Adam whose step size d is estimated, per param group, from the distance travelled.

    Update rule::

        (per group; u = g + weight_decay * theta unless decoupled_weight_decay;
         dlr = d * lr, times Adam's bias corrections with use_bias_correction)
        r = beta3 * r + (d / d0) * dlr * <u, theta_0 - theta>          (sums over the whole group)
        s = beta3 * s + (d / d0) * dlr * u                              ((d / d0) * d * u with safeguard_warmup)
        d_hat = d_coef * r / ||s||_1;  d_max = max(d_max, d_hat);  d' = min(d_max, growth_rate * max(d, d_hat))
        m = beta1 * m + d * (1 - beta1) * u;  v = beta2 * v + d^2 * (1 - beta2) * u^2
        theta = theta - dlr * (m / (sqrt(v) + d' * eps) + weight_decay * theta [decoupled])

    (``max(d, d_hat)`` applies only while d is still d0, as in the authors' package.) Leave
    ``lr`` at 1 and change ``d_coef`` to tune. The estimate is per param group: the package's
    single estimate over all groups differs where there are several. A step where ||s||_1 is
    0 (all gradients zero so far) moves nothing.
    """

    paper = Paper(
        "Mishchenko & Defazio",
        2023,
        "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
        "https://arxiv.org/abs/2306.06101",
    )
    search_space = SearchSpace({"lr": LogUniform(0.1, 10.0), "betas[0]": OneMinusLogUniform(0.5, 0.99)})
    registry_name = "prodigy"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(params, **arguments(locals()))

    @classmethod
    def chain(cls):
        return [AddDecayedWeights("coupled"), ScaleByProdigy()]


class DAdaptAdam(NamedOptimizer):
    """D-Adaptation Adam: Adam whose step size d is a running lower bound on the distance to the solution.

    Update rule::

        (per group; u = g + weight_decay * theta unless decoupled_weight_decay;
         dlr = d * lr, times Adam's bias corrections with use_bias_correction; b = sqrt(beta2))
        r = b * r + (1 - b) * dlr * <u, s / (sqrt(v) + eps)>      (s, v before this step; sums over the group)
        m = beta1 * m + dlr * (1 - beta1) * u;  v = beta2 * v + (1 - beta2) * u^2
        s = b * s + dlr * (1 - b) * u
        d = max(d, min(r / ((1 - b) * ||s||_1), growth_rate * d))
        theta = theta - m / (sqrt(v) + eps) - dlr * weight_decay * theta [decoupled]

    Leave ``lr`` at 1. The estimate is per param group (the package keeps one for all groups
    and scales a group by its ``layer_scale``, which is not offered). A step where ||s||_1 is 0
    moves nothing.
    """

    paper = Paper(
        "Defazio & Mishchenko",
        2023,
        "Learning-Rate-Free Learning by D-Adaptation",
        "https://arxiv.org/abs/2301.07733",
    )
    search_space = SearchSpace({"lr": LogUniform(0.1, 10.0), "betas[0]": OneMinusLogUniform(0.5, 0.99)})
    registry_name = "dadapt_adam"

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        use_bias_correction: bool = False,
        d0: float = 1e-6,
        growth_rate: float = math.inf,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(params, **arguments(locals()))

    @classmethod
    def chain(cls):
        return [AddDecayedWeights("coupled"), ScaleByDAdaptAdam()]

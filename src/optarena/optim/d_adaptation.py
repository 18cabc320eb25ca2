"""Prodigy and D-Adaptation Adam: Adam with the learning rate estimated from the group's gradients."""

from __future__ import annotations

import math
from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByDAdaptAdam, ScaleByProdigy, Transform


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
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            beta3=beta3,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            use_bias_correction=use_bias_correction,
            safeguard_warmup=safeguard_warmup,
            d0=d0,
            d_coef=d_coef,
            growth_rate=growth_rate,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
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
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            use_bias_correction=use_bias_correction,
            d0=d0,
            growth_rate=growth_rate,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights("coupled"), ScaleByDAdaptAdam()]


SPECS = (
    Spec(
        "prodigy",
        Prodigy,
        TestPlan(
            configs(
                {},
                (
                    "decay-bias-correction-coef-betas",
                    {"weight_decay": 0.1, "use_bias_correction": True, "d_coef": 0.5, "betas": (0.9, 0.99)},
                ),
                (
                    "l2-safeguard-beta3-growth",
                    {
                        "weight_decay": 0.05,
                        "decoupled_weight_decay": False,
                        "safeguard_warmup": True,
                        "beta3": 0.9,
                        "growth_rate": 1.5,
                    },
                ),
                ("lr-d0-eps", {"lr": 0.5, "d0": 1e-4, "eps": 1e-6}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS[:2],
                [
                    ({"d0": 0.0}, "d0 value: 0.0; allowed range: 0 < d0"),
                    ({"growth_rate": -1.0}, "growth_rate value: -1.0"),
                    ({"beta3": 1.0}, "beta3 value: 1.0"),
                ],
            ),
            reference_state_loads=False,  # its s and p0 are flattened
            complex=False,
            constant_ops=False,  # one inner product per tensor for the estimate
            descent_lr=1.0,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "Prodigy",
                lambda hp: {
                    **pick(
                        "lr", "betas", "beta3", "d0", "d_coef", "growth_rate", "weight_decay", "safeguard_warmup", "eps"
                    )(hp),
                    "weight_decouple": hp["decoupled_weight_decay"],
                    "bias_correction": hp["use_bias_correction"],
                },
            ),
        ),
        second_pass=("param", "grad"),  # d must be updated before the moments take the gradient
        read_only_state=("p0",),
    ),
    Spec(
        "dadapt_adam",
        DAdaptAdam,
        TestPlan(
            configs(
                {},
                (
                    "decay-bias-correction-betas",
                    {"weight_decay": 0.1, "use_bias_correction": True, "betas": (0.9, 0.99)},
                ),
                (
                    "decoupled-growth-d0",
                    {"weight_decay": 0.05, "decoupled_weight_decay": True, "growth_rate": 1.1, "d0": 1e-4},
                ),
            ),
            errors(
                COMMON_ERRORS, BETA_ERRORS[:2], [({"d0": -1.0}, "d0 value: -1.0"), ({"eps": 0.0}, "epsilon value: 0.0")]
            ),
            reference_state_loads=False,  # its groups hold keys of its own (layer_scale, log_every, fsdp_in_use)
            complex=False,
            constant_ops=False,
            descent_lr=1.0,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "DAdaptAdam",
                lambda hp: {
                    **pick("lr", "betas", "d0", "growth_rate", "weight_decay", "eps")(hp),
                    "weight_decouple": hp["decoupled_weight_decay"],
                    "bias_correction": hp["use_bias_correction"],
                },
            ),
        ),
    ),
)

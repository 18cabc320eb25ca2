"""AdEMAMix: Adam with a second, slow momentum in the numerator."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace, Uniform
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdemamix, ScaleByLearningRate, Transform


class AdEMAMix(NamedOptimizer):
    """AdEMAMix: AdamW whose numerator adds a slow momentum to the fast one.

    Update rule::

        m1 = beta1 * m1 + (1 - beta1) * g;  m2 = beta3 * m2 + (1 - beta3) * g
        v = beta2 * v + (1 - beta2) * g^2
        d = (m1 / (1 - beta1^t) + alpha * m2) / (sqrt(v / (1 - beta2^t)) + eps)
        theta = theta - lr * (d + weight_decay * theta)

    With ``t_alpha_beta3`` = T: ``alpha_t = min(t alpha / T, alpha)`` and
    ``beta3_t = min(exp(ln(beta1) ln(beta3) / ((1 - t/T) ln(beta3) + (t/T) ln(beta1))), beta3)``.
    """

    paper = Paper(
        "Pagliardini, Ablin & Grangier",
        2024,
        "The AdEMAMix Optimizer: Better, Faster, Older",
        "https://arxiv.org/abs/2409.03137",
    )
    search_space = SearchSpace(
        {
            "lr": LogUniform(1e-5, 1e-1),
            "betas[2]": OneMinusLogUniform(0.99, 0.9999),
            "alpha": Uniform(1.0, 10.0),
            "weight_decay": LogUniform(1e-4, 0.5),
        }
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        t_alpha_beta3: float | None = None,
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
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            t_alpha_beta3=t_alpha_beta3,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByAdemamix(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "ademamix",
        AdEMAMix,
        TestPlan(
            configs(
                {},
                ("betas-alpha-decay", {"betas": (0.8, 0.99, 0.999), "alpha": 8.0, "weight_decay": 0.1}),
                ("schedule-eps", {"t_alpha_beta3": 20, "eps": 1e-6}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"betas": (0.9, 0.999)}, "betas: (0.9, 0.999)"),
                    ({"betas": (0.9, 0.999, 1.0)}, "beta parameter at index 2: 1.0"),
                    ({"alpha": -1.0}, "alpha value: -1.0"),
                    ({"t_alpha_beta3": 0}, "t_alpha_beta3 value: 0"),
                ],
            ),
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "AdEMAMix",
                lambda hp: {
                    **pick("lr", "betas", "alpha", "t_alpha_beta3", "weight_decay", "eps")(hp),
                    "weight_decouple": True,
                },
            ),
        ),
    ),
)

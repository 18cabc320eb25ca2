"""RangerLARS (over9000): Lookahead over RAdam with a LAMB-style layer-wise trust ratio."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, configs, errors
from optarena.transforms import (
    AddDecayedWeights,
    LookaheadSync,
    ScaleByLearningRate,
    ScaleByRadam,
    ScaleByTrustRatio,
    Transform,
)

PARAM_NORM_RANGE = (0.0, 10.0)
"""``||theta||`` is clamped to this range before the trust ratio, as in the over9000 code."""


class RangerLARS(NamedOptimizer):
    """RangerLARS (over9000): RAdam steps scaled per tensor by a trust ratio, wrapped in Lookahead.

    Update rule::

        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;  m_hat = m / (1 - beta1^t)
        rho_t > sma_threshold:  d = r_t * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps)   (r_t as in RAdam)
        otherwise:              d = m_hat
        u = d + weight_decay * theta
        r = min(||theta||, 10) / ||u||            per tensor; r = 1 where either norm is 0
        max_trust_ratio given:  r = min(r, max_trust_ratio)
        theta = theta - lr * r * u
        every k-th step of a parameter:  phi = phi + alpha * (theta - phi);  theta = phi

    Grankin's combination of RAdam (Liu et al. 2019, https://arxiv.org/abs/1908.03265),
    LAMB's trust ratio (You et al. 2019, https://arxiv.org/abs/1904.00962) and Lookahead
    (Zhang et al. 2019, https://arxiv.org/abs/1907.08610). The trust ratio divides by the
    norm of the step, as LAMB defines it; the widely copied ``Ralamb`` code divides by the
    norm of the parameter after weight decay instead, which makes its ratio about 1 whenever
    ``||theta|| <= 10``. ``max_trust_ratio`` is the "Paratrooper" clamp on the ratio (off by
    default). See docs/fidelity.md.
    """

    paper = Paper(
        "Grankin",
        2019,
        "over9000: RAdam + LARS (LAMB's trust ratio) + Lookahead",
        "https://github.com/mgrankin/over9000",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        alpha: float = 0.5,
        k: int = 6,
        sma_threshold: float = 5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        max_trust_ratio: float | None = None,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            k=k,
            sma_threshold=sma_threshold,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            max_trust_ratio=max_trust_ratio,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [
            ScaleByRadam(),
            AddDecayedWeights(),
            ScaleByTrustRatio(param_norm_range=PARAM_NORM_RANGE),
            ScaleByLearningRate(),
            LookaheadSync(),
        ]


SPECS = (
    Spec(
        "rangerlars",
        RangerLARS,
        TestPlan(
            configs(
                {},
                ("decay-k-alpha-cap", {"weight_decay": 0.1, "k": 3, "alpha": 0.8, "max_trust_ratio": 2.0}),
                (
                    "lr-threshold-betas-eps-cap",
                    {"lr": 0.05, "sma_threshold": 6, "betas": (0.95, 0.99), "eps": 1e-6, "max_trust_ratio": 0.5},
                ),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [
                    ({"k": 0}, "k: 0"),
                    ({"max_trust_ratio": 0.0}, "max_trust_ratio value: 0.0"),
                    ({"alpha": -0.1}, "alpha value: -0.1"),
                ],
            ),
            reference_state_loads=False,
            complex=False,
            descent_lr=0.5,
            sync_period=6,
        ),
        second_pass=("param", "state"),
    ),
    Spec(
        "over9000",
        RangerLARS,
        TestPlan(
            configs({}, ("decay-cap", {"weight_decay": 0.1, "max_trust_ratio": 1.0})),
            errors(COMMON_ERRORS, [({"max_trust_ratio": -1.0}, "max_trust_ratio value: -1.0")]),
            reference_state_loads=False,
            complex=False,
            descent_lr=0.5,
            sync_period=6,
        ),
        description="Another name for RangerLARS, after the repository that introduced it.",
        second_pass=("param", "state"),
    ),
)

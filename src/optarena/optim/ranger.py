"""Ranger (2020): RAdam, Lookahead and gradient centralisation in one optimizer."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import (
    AddDecayedWeights,
    CentralizeGradients,
    LookaheadSync,
    ScaleByLearningRate,
    ScaleByRadam,
    Transform,
)


class Ranger(NamedOptimizer):
    """Ranger: RAdam on centralised gradients, wrapped in Lookahead.

    Update rule::

        g = grad - mean(grad over all dims but the first)   (tensors with > 1 dim; > 3 with gc_conv_only;
                                                             skipped when use_gc=False)
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;  m_hat = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > sma_threshold:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                                d = r_t * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        otherwise:              d = m_hat
        theta = theta - lr * (d + weight_decay * theta)
        every k-th step of a parameter:  phi = phi + alpha * (theta - phi);  theta = phi
        (phi, the slow weights, start at the parameter's initial value)

    The combination of Wright's 2020 Ranger: RAdam (Liu et al. 2019,
    https://arxiv.org/abs/1908.03265), Lookahead (Zhang et al. 2019,
    https://arxiv.org/abs/1907.08610) and gradient centralisation (Yong et al. 2020,
    https://arxiv.org/abs/2004.01461). Weight decay is decoupled and scaled by the learning
    rate only, ``theta <- theta - lr * weight_decay * theta`` at every step, as in the
    ``pytorch-ranger`` package; the 2020 script instead scales it by RAdam's step size.
    See docs/fidelity.md.
    """

    paper = Paper(
        "Wright",
        2019,
        "Ranger: a synergistic optimizer combining RAdam and Lookahead (and gradient centralisation, 2020)",
        "https://github.com/lessw2020/Ranger-Deep-Learning-Optimizer",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        alpha: float = 0.5,
        k: int = 6,
        sma_threshold: float = 5,
        betas: tuple[float, float] = (0.95, 0.999),
        eps: float = 1e-5,
        weight_decay: float = 0.0,
        use_gc: bool = True,
        gc_conv_only: bool = False,
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
            use_gc=use_gc,
            gc_conv_only=gc_conv_only,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [
            CentralizeGradients(),
            ScaleByRadam(),
            AddDecayedWeights(),
            ScaleByLearningRate(),
            LookaheadSync(),
        ]


SPECS = (
    Spec(
        "ranger",
        Ranger,
        TestPlan(
            configs(
                {},
                ("decay-conv-only-k-alpha", {"weight_decay": 0.1, "gc_conv_only": True, "k": 3, "alpha": 0.7}),
                ("no-gc-threshold-betas-eps", {"use_gc": False, "sma_threshold": 4, "betas": (0.9, 0.99), "eps": 1e-8}),
                ("every-step-sync", {"lr": 0.01, "k": 1, "alpha": 1.0, "weight_decay": 0.05}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [
                    ({"k": 0}, "k: 0; allowed: k an integer >= 1"),
                    ({"k": 2.5}, "k: 2.5"),
                    ({"alpha": 1.5}, "alpha value: 1.5; allowed range: 0 <= alpha <= 1"),
                    ({"sma_threshold": 3}, "sma_threshold value: 3; allowed range: 4 <= sma_threshold"),
                    ({"use_gc": "yes"}, "use_gc: 'yes'"),
                ],
            ),
            reference_state_loads=False,
            complex=False,
            sync_period=6,
            constant_ops=False,  # gradient centralisation: a few ops per distinct shape (tests/test_centralize.py)
        ),
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "Ranger",
                pick("lr", "alpha", "k", "betas", "eps", "weight_decay"),
                "pytorch-ranger's Ranger: no gradient centralisation",
            ),
            LibraryPeer(
                "pytorch-optimizer",
                "Ranger",
                pick("lr", "betas", "alpha", "k", "weight_decay", "use_gc", "gc_conv_only", "eps"),
            ),
        ),
        second_pass=("grad",),
    ),
)

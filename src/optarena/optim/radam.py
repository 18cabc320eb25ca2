"""RAdam, as torch.optim.RAdam."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleByRadam, Transform


class RAdam(NamedOptimizer):
    """RAdam: Adam whose adaptive step is switched on, and rectified, once its variance is tractable.

    Update rule::

        g = grad + weight_decay * theta               (unless decoupled_weight_decay)
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2;  m_hat = m / (1 - beta1^t)
        rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    d = r_t * m_hat * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        otherwise:  d = m_hat
        decoupled_weight_decay: d = d + weight_decay * theta
        theta = theta - lr * d
    """

    paper = Paper(
        "Liu et al.",
        2019,
        "On the Variance of the Adaptive Learning Rate and Beyond",
        "https://arxiv.org/abs/1908.03265",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
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
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [
            AddDecayedWeights("coupled"),
            ScaleByRadam(sma_threshold=5.0),
            AddDecayedWeights("decoupled"),
            ScaleByLearningRate(),
        ]


SPECS = (
    Spec(
        "radam",
        RAdam,
        TestPlan(
            configs(
                {},
                ("l2-decay", {"weight_decay": 0.1}),
                ("decoupled-decay-betas", {"weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.9, 0.99)}),
            ),
            errors(COMMON_ERRORS, BETA_ERRORS),
        ),
        peers=(
            TorchPeer("RAdam", pick("lr", "betas", "eps", "weight_decay", "decoupled_weight_decay")),
            LibraryPeer("torch-optimizer", "RAdam", pick("lr", "betas", "eps", "weight_decay")),
            LibraryPeer(
                "pytorch-optimizer",
                "RAdam",
                lambda hp: {**pick("lr", "betas", "eps", "weight_decay")(hp), "degenerated_to_sgd": True},
                "degenerated_to_sgd=True (its default False skips the first steps' updates)",
            ),
        ),
    ),
)

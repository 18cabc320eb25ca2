"""NAdam, as torch.optim.NAdam."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, ScaleByNadam, Transform


class NAdam(NamedOptimizer):
    """NAdam: Adam with Nesterov momentum and Dozat's momentum warm-up schedule.

    Update rule::

        g = grad + weight_decay * theta               (unless decoupled_weight_decay)
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay));  P_t = mu_1 * ... * mu_t
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
        d = sqrt(v / (1 - beta2^t)) + eps
        step = (1 - mu_t) / (1 - P_t) * g / d + mu_{t+1} / (1 - P_t * mu_{t+1}) * m / d
        decoupled_weight_decay: step = step + weight_decay * theta
        theta = theta - lr * step
    """

    paper = Paper(
        "Dozat",
        2016,
        "Incorporating Nesterov Momentum into Adam (ICLR workshop)",
        "https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
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
            momentum_decay=momentum_decay,
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
            ScaleByNadam(),
            AddDecayedWeights("decoupled"),
            ScaleByLearningRate(),
        ]


SPECS = (
    Spec(
        "nadam",
        NAdam,
        TestPlan(
            configs(
                {},
                ("momentum-decay-l2", {"momentum_decay": 0.01, "weight_decay": 0.1}),
                ("decoupled-decay", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
            ),
            errors(COMMON_ERRORS, BETA_ERRORS, [({"momentum_decay": -1}, "momentum_decay value: -1")]),
        ),
        peers=(
            TorchPeer("NAdam", pick("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay")),
        ),
    ),
    Spec(
        "nadamw",
        NAdam,
        TestPlan(
            configs({}, ("decay-betas", {"weight_decay": 0.1, "betas": (0.8, 0.99)})),
            errors(COMMON_ERRORS, BETA_ERRORS),
        ),
        description="NAdam with weight decay decoupled from the gradient (AlgoPerf's NAdamW baseline).",
        preset={"decoupled_weight_decay": True, "weight_decay": 1e-2},
        space=SearchSpace(
            {
                "lr": LogUniform(1e-5, 1e-1),
                "betas[0]": OneMinusLogUniform(0.5, 0.99),
                "weight_decay": LogUniform(1e-4, 0.5),
            }
        ),
        peers=(
            TorchPeer("NAdam", pick("lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay")),
        ),
    ),
)

"""ADOPT: Adam that normalises by the previous second moment, before the momentum."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdopt, ScaleByLearningRate, Transform


class ADOPT(NamedOptimizer):
    """ADOPT: Adam with the gradient normalised by the previous second moment, then averaged.

    Update rule::

        g = grad + weight_decay * theta                (unless decoupled_weight_decay)
        t = 1:  v = g^2 (no update)
        t > 1:  n = clip(g / max(sqrt(v), eps), -(t-1)^(1/4), (t-1)^(1/4))   (v of the previous step;
                                                                             no clip with clipping=False)
                m = beta1 * m + (1 - beta1) * n;  v = beta2 * v + (1 - beta2) * g^2
                d = m  (+ weight_decay * theta with decoupled_weight_decay)
                theta = theta - lr * d
    """

    paper = Paper(
        "Taniguchi et al.",
        2024,
        "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate",
        "https://arxiv.org/abs/2411.02853",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        clipping: bool = True,
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
            clipping=clipping,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights("coupled"), ScaleByAdopt(), AddDecayedWeights("decoupled"), ScaleByLearningRate()]


SPECS = (
    Spec(
        "adopt",
        ADOPT,
        TestPlan(
            configs(
                {},
                ("betas-eps-decay", {"betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1}),
                ("no-clipping-decoupled", {"clipping": False, "weight_decay": 0.1, "decoupled_weight_decay": True}),
            ),
            errors(COMMON_ERRORS, BETA_ERRORS, [({"clipping": 1}, "clipping: 1")]),
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "ADOPT",
                lambda hp: {
                    **pick("lr", "betas", "weight_decay", "eps")(hp),
                    "weight_decouple": hp["decoupled_weight_decay"],
                },
                "clips at step^(1/4) counting the first step as 1 (the paper and optax: (step - 1)^(1/4))",
            ),
        ),
    ),
)

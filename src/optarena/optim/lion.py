"""Lion and its cautious variant."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, CautiousMask, ScaleByLearningRate, ScaleByLion, Transform

LION_PAPER = Paper(
    "Chen et al.", 2023, "Symbolic Discovery of Optimization Algorithms", "https://arxiv.org/abs/2302.06675"
)
CAUTIOUS_PAPER = Paper(
    "Liang et al.",
    2024,
    "Cautious Optimizers: Improving Training with One Line of Code",
    "https://arxiv.org/abs/2411.16085",
)


class Lion(NamedOptimizer):
    """Lion: the sign of an interpolation of momentum and gradient, one momentum buffer.

    Update rule::

        d = sign(beta1 * m + (1 - beta1) * g)
        m = beta2 * m + (1 - beta2) * g
        theta = theta - lr * (d + weight_decay * theta)

    Every entry moves by lr (or 0), so lr is typically 3-10x smaller than AdamW's and
    weight_decay 3-10x larger.
    """

    paper = LION_PAPER
    search_space = SearchSpace(
        {"lr": LogUniform(1e-6, 1e-2), "betas[0]": OneMinusLogUniform(0.5, 0.99), "weight_decay": LogUniform(1e-3, 1.0)}
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
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
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByLion(), AddDecayedWeights(), ScaleByLearningRate()]


class CautiousLion(Lion):
    """Cautious Lion: Lion whose update keeps only the entries that agree in sign with the gradient.

    Update rule::

        d = sign(beta1 * m + (1 - beta1) * g);  m = beta2 * m + (1 - beta2) * g
        phi = 1[d * g > 0];  d = d * phi * n / max(sum(phi), 1)    (n: entries of the tensor)
        theta = theta - lr * (d + weight_decay * theta)
    """

    paper = CAUTIOUS_PAPER

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByLion(), CautiousMask(), AddDecayedWeights(), ScaleByLearningRate()]


SPECS = (
    Spec(
        "lion",
        Lion,
        TestPlan(
            configs({}, ("lr-betas-decay", {"lr": 1e-3, "betas": (0.95, 0.98), "weight_decay": 0.5})),
            errors(COMMON_ERRORS, [({"betas": (1.0, 0.99)}, "beta parameter at index 0: 1.0")]),
            descent_lr=1e-2,
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "Lion",
                lambda hp: {**pick("lr", "betas", "weight_decay")(hp), "weight_decouple": True},
            ),
        ),
    ),
    Spec(
        "cautious_lion",
        CautiousLion,
        TestPlan(
            configs({}, ("lr-betas-decay", {"lr": 1e-3, "betas": (0.95, 0.98), "weight_decay": 0.5})),
            errors(COMMON_ERRORS),
            reference_state_loads=False,  # its groups hold cautious_factor and cautious_wd
            complex=False,
            constant_ops=False,  # the mask is one selection (torch.where) per tensor
            descent_lr=1e-2,
        ),
        second_pass=("grad", "state"),  # the mask's count comes before the update is applied
    ),
)

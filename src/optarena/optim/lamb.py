"""LAMB: Adam's direction with decoupled decay, rescaled per tensor by a trust ratio."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import (
    AddDecayedWeights,
    ScaleByAdam,
    ScaleByLearningRate,
    ScaleByTrustRatio,
    Transform,
)


class LAMB(NamedOptimizer):
    """LAMB: Adam's step plus decoupled decay, rescaled per tensor to ||theta|| / ||step||.

    Update rule::

        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad^2
        u = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * theta
        r = ||theta|| / ||u||      per tensor; r = 1 where either norm is 0
        theta = theta - lr * r * u

    The paper's scaling function phi is the identity (no clamp of ||theta||), and both
    moments are bias-corrected, as in optax.lamb, which it matches. Groups with
    ``layer_adaptation=False`` take the plain step ``u`` (the usual exclusion of biases
    and normalisation layers, alongside ``weight_decay=0``).
    """

    paper = Paper(
        "You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer & Hsieh",
        2019,
        "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
        "https://arxiv.org/abs/1904.00962",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1e-1), "weight_decay": LogUniform(1e-4, 0.3)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        layer_adaptation: bool = True,
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
            layer_adaptation=layer_adaptation,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByAdam(), AddDecayedWeights(), ScaleByTrustRatio(max_trust_ratio=None), ScaleByLearningRate()]


SPECS = (
    Spec(
        "lamb",
        LAMB,
        TestPlan(
            configs(
                {},
                ("decay", {"weight_decay": 0.01}),
                ("betas-eps-decay", {"betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.1}),
                ("no-layer-adaptation", {"weight_decay": 0.1, "layer_adaptation": False}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [
                    ({"weight_decay": -0.1}, "weight_decay value: -0.1"),
                    ({"layer_adaptation": 1}, "layer_adaptation: 1"),
                ],
            ),
            complex=False,
            descent_lr=0.1,
        ),
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "Lamb",
                lambda hp: {**pick("lr", "betas", "eps", "weight_decay")(hp), "debias": True, "clamp_value": 1e30},
                "closest settings, debias=True and no norm clamp; its bias correction still scales the step "
                "after the trust ratio",
            ),
            LibraryPeer("pytorch-optimizer", "Lamb", pick("lr", "betas", "eps", "weight_decay")),
        ),
        second_pass=("param", "state"),
    ),
)

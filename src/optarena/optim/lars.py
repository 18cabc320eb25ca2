"""LARS: SGD with momentum whose step is scaled per tensor by a layer-wise local rate."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import ScaleByLars, ScaleByLearningRate, Trace, Transform


class LARS(NamedOptimizer):
    """LARS: momentum SGD with a per-tensor local learning rate eta ||theta|| / ||grad||.

    Update rule::

        local = trust_coefficient * ||theta|| / (||grad|| + weight_decay * ||theta|| + eps)
                per tensor; local = 1 where ||theta|| or ||grad|| is 0
        u = local * (grad + weight_decay * theta)
        b = u on the first step, then b = momentum * b + u
        d = u + momentum * b   if nesterov   else   b        (d = u while momentum == 0)
        theta = theta - lr * d

    Algorithm 1 of the paper, with the momentum buffer of torch.optim.SGD: the global
    learning rate multiplies the buffer instead of entering it, which is the same under a
    constant rate. Exclude biases and normalisation layers with a param group that sets
    ``weight_decay=0`` and ``layer_adaptation=False``.
    """

    paper = Paper(
        "You, Gitman & Ginsburg",
        2017,
        "Large Batch Training of Convolutional Networks",
        "https://arxiv.org/abs/1708.03888",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-2, 30.0), "momentum": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        eps: float = 0.0,
        nesterov: bool = False,
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
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            nesterov=nesterov,
            layer_adaptation=layer_adaptation,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByLars(), Trace(), ScaleByLearningRate()]

    def check_group(self, group: dict[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group.get("dampening", 0.0) != 0):
            raise ValueError(
                f"{type(self).__name__}: nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={group['momentum']!r}, dampening={group.get('dampening', 0.0)!r}"
            )


SPECS = (
    Spec(
        "lars",
        LARS,
        # The least-squares parameters start at zero, where the local rate falls back to 1: a
        # larger lr overshoots on that first step and momentum carries it (see docs/fidelity.md).
        TestPlan(
            configs(
                ("minimum", {"lr": 0.03}),
                ("decay-trust", {"lr": 0.03, "weight_decay": 0.01, "trust_coefficient": 0.05}),
                (
                    "nesterov-trust-decay",
                    {"lr": 2.0, "momentum": 0.8, "nesterov": True, "trust_coefficient": 0.01, "weight_decay": 0.05},
                ),
                ("no-momentum-eps", {"lr": 0.5, "momentum": 0.0, "trust_coefficient": 0.02, "eps": 1e-3}),
                ("no-layer-adaptation", {"lr": 0.1, "weight_decay": 0.01, "layer_adaptation": False}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"momentum": -0.5}, "momentum value: -0.5"),
                    ({"weight_decay": -1}, "weight_decay value: -1"),
                    ({"trust_coefficient": 0.0}, "trust_coefficient value: 0.0; allowed range: 0 < trust_coefficient"),
                    ({"eps": -1.0}, "epsilon value: -1.0"),
                    ({"momentum": 0.0, "nesterov": True}, "nesterov=True requires momentum > 0"),
                ],
            ),
            complex=False,
        ),
        # a weight decay, so that every library's LARS adapts its rate
        settings={"lr": 0.1, "weight_decay": 1e-4},
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "LARS",
                pick("lr", "momentum", "weight_decay", "nesterov", "trust_coefficient", "eps"),
                "adapts only where weight_decay != 0",
            ),
            LibraryPeer(
                "pytorch-optimizer", "LARS", pick("lr", "momentum", "weight_decay", "nesterov", "trust_coefficient")
            ),
        ),
        second_pass=("param", "grad"),
    ),
)

"""Adam, as torch.optim.Adam (including its ``amsgrad`` and ``decoupled_weight_decay``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optarena.optim import torch_kernels
from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLearningRate, Transform

ADAM_PAPER = Paper("Kingma & Ba", 2014, "Adam: A Method for Stochastic Optimization", "https://arxiv.org/abs/1412.6980")


def check_tensor_hyperparameters(owner: str, group: dict[str, Any]) -> None:
    """torch.optim.Adam's rules for tensor ``lr`` and ``betas``, with its messages.

    Tensor betas come in pairs, and torch's multi-tensor path takes a tensor ``lr`` or beta
    only when ``capturable``; optarena reads them as numbers either way, but refuses what
    torch refuses so that code moves between the two unchanged.
    """
    foreach_only = group.get("foreach") and not group.get("capturable")
    if isinstance(group["lr"], Tensor) and foreach_only:
        raise ValueError(f"{owner}: lr as a Tensor is not supported for capturable=False and foreach=True")
    betas = group["betas"]
    if isinstance(betas[0], Tensor) != isinstance(betas[1], Tensor):
        raise ValueError(f"{owner}: betas must be either both floats or both Tensors, got {betas!r}")
    for index, beta in enumerate(betas):
        if isinstance(beta, Tensor) and foreach_only:
            raise ValueError(
                f"{owner}: betas[{index}] as a Tensor is not supported for capturable=False and foreach=True"
            )


class Adam(NamedOptimizer):
    """Adam: momentum divided by the root of a running average of squared gradients.

    Update rule::

        g = grad + weight_decay * theta               (unless decoupled_weight_decay)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        amsgrad: v_max = max(v_max, v), used in place of v below
        d = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
        decoupled_weight_decay: d = d + weight_decay * theta
        theta = theta - lr * d
    """

    paper = ADAM_PAPER
    torch_kernel = torch_kernels.ADAM
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [
            AddDecayedWeights("coupled"),
            ScaleByAdam(),
            AddDecayedWeights("decoupled"),
            ScaleByLearningRate(),
        ]

    def check_group(self, group: dict[str, Any]) -> None:
        check_tensor_hyperparameters(type(self).__name__, group)


SPECS = (
    Spec(
        "adam",
        Adam,
        TestPlan(
            configs(
                {},
                ("amsgrad", {"amsgrad": True}),
                ("l2-decay", {"weight_decay": 0.1}),
                ("decoupled-decay-betas", {"weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.8, 0.99)}),
                ("amsgrad-decay-eps", {"amsgrad": True, "weight_decay": 0.05, "eps": 1e-6}),
            ),
            errors(COMMON_ERRORS, BETA_ERRORS, [({"betas": (0.9,)}, "betas: (0.9,)")]),
        ),
        peers=(
            TorchPeer(
                "Adam",
                pick("lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay"),
                ("foreach", "fused"),
            ),
        ),
    ),
    Spec(
        "amsgrad",
        Adam,
        TestPlan(
            configs({}, ("l2-decay", {"weight_decay": 0.1})),
            errors(COMMON_ERRORS, BETA_ERRORS),
        ),
        description="AMSGrad: Adam whose denominator never decreases (Adam with amsgrad=True).",
        paper=Paper(
            "Reddi, Kale & Kumar", 2018, "On the Convergence of Adam and Beyond", "https://arxiv.org/abs/1904.09237"
        ),
        preset={"amsgrad": True},
        peers=(
            TorchPeer(
                "Adam",
                pick("lr", "betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay"),
                ("foreach", "fused"),
            ),
        ),
    ),
)

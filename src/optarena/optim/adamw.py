"""AdamW, as torch.optim.AdamW."""

from __future__ import annotations

from typing import Any

from optarena.optim import torch_kernels
from optarena.optim.adam import check_tensor_hyperparameters
from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLearningRate, Transform


class AdamW(NamedOptimizer):
    """AdamW: Adam with weight decay decoupled from the gradient.

    Update rule::

        m, v (and v_max with amsgrad) as in Adam, on the raw gradient
        d = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * theta
        theta = theta - lr * d        (torch.optim writes it theta * (1 - lr * wd) - lr * adam)
    """

    paper = Paper(
        "Loshchilov & Hutter", 2017, "Decoupled Weight Decay Regularization", "https://arxiv.org/abs/1711.05101"
    )
    torch_kernel = torch_kernels.ADAMW
    search_space = SearchSpace(
        {"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99), "weight_decay": LogUniform(1e-4, 0.5)}
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        # torch.optim.AdamW keeps the flag in its groups (always True); so do its state dicts and ours
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
            decoupled_weight_decay=True,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByAdam(), AddDecayedWeights(), ScaleByLearningRate()]

    def check_group(self, group: dict[str, Any]) -> None:
        check_tensor_hyperparameters(type(self).__name__, group)


SPECS = (
    Spec(
        "adamw",
        AdamW,
        TestPlan(
            configs({}, ("amsgrad-decay", {"amsgrad": True, "weight_decay": 0.1}), ("no-decay", {"weight_decay": 0.0})),
            errors(COMMON_ERRORS, BETA_ERRORS, [({"weight_decay": -0.01}, "weight_decay value: -0.01")]),
        ),
        peers=(TorchPeer("AdamW", pick("lr", "betas", "eps", "weight_decay", "amsgrad"), ("foreach", "fused")),),
    ),
)

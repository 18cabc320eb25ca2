"""AdaGrad, as torch.optim.Adagrad."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optarena.optim import torch_kernels
from optarena.optim.base import NamedOptimizer, Paper
from optarena.optim.sparse_rows import (
    add_to_rows,
    coalesced_rows,
    ensure_step,
    gradient_of,
    math_dtype,
    refuse_complex,
    state_like,
)
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdagrad, ScaleByLearningRate, Transform


class Adagrad(NamedOptimizer):
    """AdaGrad: per-coordinate steps shrinking with the accumulated squared gradients.

    Update rule::

        g = grad + weight_decay * theta
        s = s + g^2                                   (s starts at initial_accumulator_value)
        theta = theta - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Sparse gradients (``nn.Embedding(sparse=True)``) update the sums and parameters of the
    rows present only, as torch.optim.Adagrad, which also refuses them with weight decay.
    """

    paper = Paper(
        "Duchi, Hazan & Singer",
        2011,
        "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
        "https://jmlr.org/papers/v12/duchi11a.html",
    )
    torch_kernel = torch_kernels.ADAGRAD
    search_space = SearchSpace({"lr": LogUniform(1e-4, 1.0)})
    supports_sparse = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByAdagrad(), ScaleByLearningRate()]

    def check_gradients(self, index: int, group: dict[str, Any], params: list[Tensor]) -> None:
        if float(group["weight_decay"]) != 0 and any(gradient_of(p).is_sparse for p in params):
            raise RuntimeError(
                f"{type(self).__name__}: weight_decay option is not compatible with sparse gradients "
                f"(param_groups[{index}] has weight_decay={group['weight_decay']!r}); nothing was updated"
            )

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        dense = [p for p in params if not gradient_of(p).is_sparse]
        if dense:
            super()._update_group(group, dense)
        for p in params:
            if gradient_of(p).is_sparse:
                sparse_adagrad_update(type(self).__name__, p, self.state[p], group)


def sparse_adagrad_update(owner: str, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """torch.optim.Adagrad's sparse step: the sums and parameters of the rows present only."""
    refuse_complex(owner, param)
    step = ensure_step(state)
    if "sum" not in state:
        state["sum"] = state_like(param, group, float(group["initial_accumulator_value"]))
    rows, values = coalesced_rows(gradient_of(param), group["maximize"])
    if values.numel() == 0:
        return
    values = values.to(math_dtype(param, group))
    sums = state["sum"][rows].to(values.dtype) + values * values
    state["sum"].index_put_(rows, sums.to(state["sum"].dtype))
    clr = float(group["lr"]) / (1 + (float(step) - 1) * float(group["lr_decay"]))
    add_to_rows(param, state, group, rows, values / (sums.sqrt() + float(group["eps"])) * -clr)


SPECS = (
    Spec(
        "adagrad",
        Adagrad,
        TestPlan(
            configs(
                {},
                (
                    "decay-accumulator-eps",
                    {"lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.3, "eps": 1e-6},
                ),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"lr_decay": -1}, "lr_decay value: -1"),
                    ({"initial_accumulator_value": -1}, "initial_accumulator_value value: -1"),
                ],
            ),
            descent_lr=0.1,
            # torch starts the imaginary part's sum at 0, optarena at initial_accumulator_value
            complex_reference_config={"lr_decay": 0.05, "weight_decay": 0.1, "eps": 1e-6},
            sparse=True,
        ),
        peers=(
            TorchPeer(
                "Adagrad",
                pick("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
                ("foreach", "fused"),
            ),
        ),
    ),
)

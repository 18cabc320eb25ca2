"""LazyAdam: Adam that, for sparse gradients, updates only the rows present (torch.optim.SparseAdam)."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from optarena.optim.adam import ADAM_PAPER
from optarena.optim.base import NamedOptimizer
from optarena.optim.sparse_rows import (
    add_to_rows,
    coalesced_rows,
    ensure_step,
    gradient_of,
    math_dtype,
    refuse_complex,
    state_like,
)
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import ScaleByAdam, ScaleByLearningRate, Transform


def sparse_adam_update(param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
    """One lazy Adam step of ``param`` for a sparse ``grad``: only the rows it holds move.

    The same arithmetic as torch.optim.SparseAdam: the gradient is coalesced (duplicate
    indices summed), the moments of the rows present are updated, and
    ``theta -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)`` there. ``t``
    counts the steps this parameter had a gradient, as in SparseAdam (not per row). State
    and precision follow the dense path (float32 moments and math for bf16/fp16 parameters),
    so sparse and dense steps can alternate on one parameter.
    """
    refuse_complex("LazyAdam", param)
    step = ensure_step(state)
    for key in ("exp_avg", "exp_avg_sq"):
        if key not in state:
            state[key] = state_like(param, group)
    rows, values = coalesced_rows(grad, group["maximize"])
    if values.numel() == 0:
        return
    dtype = math_dtype(param, group)
    values = values.to(dtype)
    beta1, beta2 = (float(b) for b in group["betas"])
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]

    old_avg = exp_avg[rows].to(dtype)
    new_avg = old_avg + (values - old_avg) * (1.0 - beta1)
    old_avg_sq = exp_avg_sq[rows].to(dtype)
    new_avg_sq = old_avg_sq + (values * values - old_avg_sq) * (1.0 - beta2)
    exp_avg.index_put_(rows, new_avg.to(exp_avg.dtype))
    exp_avg_sq.index_put_(rows, new_avg_sq.to(exp_avg_sq.dtype))

    t = float(step)
    step_size = float(group["lr"]) * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    change = -step_size * (new_avg / (new_avg_sq.sqrt() + float(group["eps"])))
    add_to_rows(param, state, group, rows, change)


class LazyAdam(NamedOptimizer):
    """LazyAdam: Adam that, for a sparse gradient, updates only the rows it holds, moments included.

    Update rule::

        dense gradient: Adam
            m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
            theta = theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
        sparse gradient (torch.optim.SparseAdam), for the rows r present only:
            m[r] = beta1 * m[r] + (1 - beta1) * g[r];  v[r] likewise with g[r]^2
            theta[r] = theta[r] - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m[r] / (sqrt(v[r]) + eps)

    Rows absent from a sparse gradient keep their moments (no decay), which is what makes
    large embeddings cheap. The sparse path adds ``eps`` to the un-corrected ``sqrt(v)``,
    as SparseAdam does (Adam adds it after the bias correction); ``t`` counts the steps of
    the whole parameter. The name is TensorFlow Addons' for this variant of Adam.
    """

    paper = ADAM_PAPER
    supports_sparse = True
    foreign_group_keys = {"weight_decay": 0, "decoupled_weight_decay": False}
    """A torch.optim.Adam state dict without weight decay loads (SparseAdam's has neither key)."""
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
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
            betas=betas,
            eps=eps,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByAdam(), ScaleByLearningRate()]

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        dense = [p for p in params if not gradient_of(p).is_sparse]
        if dense:
            super()._update_group(group, dense)
        for p in params:
            if gradient_of(p).is_sparse:
                sparse_adam_update(p, gradient_of(p), self.state[p], group)


SPECS = (
    Spec(
        "lazyadam",
        LazyAdam,
        TestPlan(
            configs({}, ("lr-betas-eps", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6})),
            errors(COMMON_ERRORS, BETA_ERRORS),
            sparse=True,
        ),
        peers=(
            TorchPeer(
                "Adam", pick("lr", "betas", "eps"), ("foreach", "fused"), "with dense gradients LazyAdam is Adam"
            ),
        ),
    ),
)

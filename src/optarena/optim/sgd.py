"""SGD with heavy-ball or Nesterov momentum, as torch.optim.SGD."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from optarena.optim import torch_kernels
from optarena.optim.base import NamedOptimizer, Paper
from optarena.optim.sparse_rows import (
    add_to_rows,
    coalesced_rows,
    dense_gradients,
    gradient_of,
    math_dtype,
    refuse_complex,
)
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByLearningRate, Trace, Transform


class SGD(NamedOptimizer):
    """Stochastic gradient descent, with optional heavy-ball or Nesterov momentum.

    Update rule::

        g = grad + weight_decay * theta
        b = g on the first step, then b = momentum * b + (1 - dampening) * g
        d = g + momentum * b   if nesterov   else   b        (d = g while momentum == 0)
        theta = theta - lr * d

    Sparse gradients (``nn.Embedding(sparse=True)``) are supported as in torch.optim.SGD:
    without momentum and weight decay only the rows present move; otherwise every row does
    (the decay or the momentum buffer touches them all), by the dense update.
    """

    paper = Paper(
        "Robbins & Monro", 1951, "A Stochastic Approximation Method", "https://doi.org/10.1214/aoms/1177729586"
    )
    torch_kernel = torch_kernels.SGD
    search_space = SearchSpace({"lr": LogUniform(1e-3, 3.0)})
    supports_sparse = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), Trace(), ScaleByLearningRate()]

    def check_group(self, group: dict[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"{type(self).__name__}: nesterov=True requires momentum > 0 and dampening == 0, "
                f"got momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        sparse = [p for p in params if gradient_of(p).is_sparse]
        if not sparse:
            super()._update_group(group, params)
            return
        dense = [p for p in params if not gradient_of(p).is_sparse]
        if dense:
            super()._update_group(group, dense)
        if float(group["momentum"]) != 0 or float(group["weight_decay"]) != 0:
            with dense_gradients(sparse):
                super()._update_group(group, sparse)
            return
        for p in sparse:
            refuse_complex(type(self).__name__, p)
            state = self.state[p]
            rows, values = coalesced_rows(gradient_of(p), group["maximize"])
            add_to_rows(p, state, group, rows, values.to(math_dtype(p, group)) * -float(group["lr"]))
            if not state:
                del self.state[p]


_SGD_PEER = TorchPeer("SGD", pick("lr", "momentum", "dampening", "weight_decay", "nesterov"), ("foreach", "fused"))

SPECS = (
    Spec(
        "sgd",
        SGD,
        TestPlan(
            configs(
                ("minimum", {"lr": 0.01}),
                ("weight-decay", {"lr": 0.01, "weight_decay": 0.1}),
                ("momentum-dampening-decay", {"lr": 0.01, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05}),
                ("nesterov", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"momentum": -0.5}, "momentum value: -0.5"),
                    ({"weight_decay": -1}, "weight_decay value: -1"),
                    ({"nesterov": True}, "nesterov=True requires momentum > 0"),
                ],
            ),
            descent_lr=0.05,
            sparse=True,
        ),
        peers=(_SGD_PEER,),
    ),
    Spec(
        "momentum",
        SGD,
        TestPlan(
            configs(("minimum", {"lr": 0.01}), ("dampening", {"lr": 0.01, "dampening": 0.5})),
            errors(COMMON_ERRORS),
            sparse=True,
        ),
        description="SGD with heavy-ball momentum 0.9.",
        paper=Paper(
            "Polyak",
            1964,
            "Some methods of speeding up the convergence of iteration methods",
            "https://doi.org/10.1016/0041-5553(64)90137-5",
        ),
        preset={"momentum": 0.9},
        space=SearchSpace({"lr": LogUniform(1e-4, 1.0), "momentum": OneMinusLogUniform(0.5, 0.99)}),
        peers=(_SGD_PEER,),
    ),
    Spec(
        "nesterov",
        SGD,
        TestPlan(
            configs(("minimum", {"lr": 0.01}), ("weight-decay", {"lr": 0.01, "weight_decay": 0.1})),
            errors(COMMON_ERRORS, [({"dampening": 0.1}, "dampening=0.1")]),
            sparse=True,
        ),
        description="SGD with Nesterov momentum 0.9.",
        paper=Paper(
            "Sutskever, Martens, Dahl & Hinton",
            2013,
            "On the importance of initialization and momentum in deep learning",
            "https://proceedings.mlr.press/v28/sutskever13.html",
        ),
        preset={"momentum": 0.9, "nesterov": True},
        space=SearchSpace({"lr": LogUniform(1e-4, 1.0), "momentum": OneMinusLogUniform(0.5, 0.99)}),
        peers=(_SGD_PEER,),
    ),
)

"""Rprop, as torch.optim.Rprop."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.search_space import LogUniform, SearchSpace, Uniform
from optarena.spec import COMMON_ERRORS, Spec, TestPlan, TorchPeer, configs, errors, pick
from optarena.transforms import ScaleByRprop, Transform


class Rprop(NamedOptimizer):
    """Rprop: per-coordinate step sizes grown while the gradient keeps its sign, shrunk when it flips.

    Update rule::

        s = lr on the first step (every coordinate);  prev = 0
        q = sign(g * prev)
        q > 0:  s = min(s * etaplus, step_sizes[1])
        q < 0:  s = max(s * etaminus, step_sizes[0]);  g = 0
        theta = theta - sign(g) * s;  prev = g

    ``lr`` is only the initial step size: changing it later (a scheduler) has no effect,
    as in torch.optim.Rprop. A NaN gradient component leaves its coordinate where it is
    (``sign(NaN) = 0`` in torch), as in torch.optim.Rprop. The full-batch method of Riedmiller & Braun; with mini-batches
    the sign flips of noisy gradients shrink the steps (RMSprop is its mini-batch successor).
    """

    paper = Paper(
        "Riedmiller & Braun",
        1993,
        "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm",
        "https://doi.org/10.1109/ICNN.1993.298623",
    )
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "etas[1]": Uniform(1.05, 1.5)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        nonfinite: str = "ignore",
    ):
        super().__init__(
            params,
            lr=lr,
            etas=etas,
            step_sizes=step_sizes,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByRprop()]

    def check_group(self, group: dict[str, Any]) -> None:
        smallest, largest = group["step_sizes"]
        if smallest > largest:
            raise ValueError(
                f"{type(self).__name__}: Invalid step_sizes: {group['step_sizes']!r}; "
                "allowed: step_sizes[0] <= step_sizes[1] (minimum, maximum)"
            )


SPECS = (
    Spec(
        "rprop",
        Rprop,
        TestPlan(
            configs(
                {},
                ("etas-step-sizes", {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2)}),
                ("small-lr-etas", {"lr": 1e-3, "etas": (0.6, 1.1)}),
            ),
            errors(
                COMMON_ERRORS,
                [
                    ({"etas": (1.0, 1.2)}, "Invalid eta values: 1.0, 1.2; allowed: 0 < etas[0] < 1; 1 < etas[1]"),
                    ({"etas": (0.5, 1.0)}, "Invalid eta values: 0.5, 1.0"),
                    ({"step_sizes": (-1.0, 50.0)}, "step_sizes[0] value: -1.0"),
                    ({"step_sizes": (1.0, 0.5)}, "step_sizes[0] <= step_sizes[1]"),
                ],
            ),
            scheduled=False,
            constant_ops=False,  # two selections (torch.where) per tensor, as torch's own foreach Rprop
        ),
        peers=(TorchPeer("Rprop", pick("lr", "etas", "step_sizes")),),
    ),
)

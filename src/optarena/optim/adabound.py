"""AdaBound and AMSBound, as the authors' ``adabound`` package."""

from __future__ import annotations

from typing import Any

from optarena.optim.base import NamedOptimizer, Paper
from optarena.optim.checkpoints import steps_as_tensors
from optarena.search_space import LogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByAdabound, Transform
from optarena.transforms.adabound import BASE_LR

ADABOUND_PAPER = Paper(
    "Luo, Xiong, Liu & Sun",
    2019,
    "Adaptive Gradient Methods with Dynamic Bound of Learning Rate",
    "https://arxiv.org/abs/1902.09843",
)


class AdaBound(NamedOptimizer):
    """AdaBound: Adam whose per-coordinate step size is clipped into bounds that converge to SGD's.

    Update rule::

        g = grad + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
        amsbound: v = v_max = max(v_max, v)
        f = final_lr * lr / base_lr                    (base_lr: the group's lr at construction)
        lower = f * (1 - 1 / (gamma * t + 1));  upper = f * (1 + 1 / (gamma * t))
        eta = clamp(lr * sqrt(1 - beta2^t) / (1 - beta1^t) / (sqrt(v) + eps), lower, upper)
        theta = theta - eta * m

    As in the authors' code, ``eps`` is added to the un-corrected ``sqrt(v)``, and
    ``final_lr`` follows the learning rate's schedule through ``lr / base_lr``. Each
    group's ``base_lr`` is recorded in the group (and so in the state dict); a group built
    with ``lr=0`` has bounds of 0 (the authors' code divides by zero).
    """

    paper = ADABOUND_PAPER
    search_space = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "final_lr": LogUniform(1e-3, 1.0)})

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsbound: bool = False,
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
            final_lr=final_lr,
            gamma=gamma,
            eps=eps,
            weight_decay=weight_decay,
            amsbound=amsbound,
            foreach=foreach,
            maximize=maximize,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScaleByAdabound()]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault(BASE_LR, float(group["lr"]))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of the authors' ``adabound.AdaBound``.

        Theirs keeps ``step`` as an int and no ``base_lr``: the step becomes a tensor, and
        each group keeps the ``base_lr`` of this optimizer's construction, as theirs does.
        """
        base_lrs = [group[BASE_LR] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, base_lr in zip(self.param_groups, base_lrs):
            group.setdefault(BASE_LR, base_lr)
        steps_as_tensors(self.state.values())


SPECS = (
    Spec(
        "adabound",
        AdaBound,
        TestPlan(
            configs(
                {},
                ("decay-final-lr-gamma", {"weight_decay": 0.1, "final_lr": 0.05, "gamma": 0.01}),
                ("amsbound-betas-eps-lr", {"amsbound": True, "betas": (0.8, 0.99), "eps": 1e-6, "lr": 0.01}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS,
                [
                    ({"final_lr": -0.1}, "final_lr value: -0.1"),
                    ({"gamma": 0.0}, "gamma value: 0.0; allowed range: 0 < gamma < 1"),
                ],
            ),
        ),
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "AdaBound",
                lambda hp: {**pick("lr", "betas", "final_lr", "gamma", "eps", "weight_decay")(hp), "amsbound": False},
            ),
            LibraryPeer(
                "pytorch-optimizer",
                "AdaBound",
                lambda hp: {**pick("lr", "betas", "final_lr", "gamma", "eps", "weight_decay")(hp), "ams_bound": False},
            ),
        ),
    ),
    Spec(
        "amsbound",
        AdaBound,
        TestPlan(
            configs({}, ("decay-final-lr-gamma", {"weight_decay": 0.1, "final_lr": 0.05, "gamma": 0.01})),
            errors(COMMON_ERRORS, BETA_ERRORS),
        ),
        description="AMSBound: AdaBound on the running maximum of the second moment (AdaBound with amsbound=True).",
        preset={"amsbound": True},
        peers=(
            LibraryPeer(
                "torch-optimizer",
                "AdaBound",
                lambda hp: {**pick("lr", "betas", "final_lr", "gamma", "eps", "weight_decay")(hp), "amsbound": True},
            ),
            LibraryPeer(
                "pytorch-optimizer",
                "AdaBound",
                lambda hp: {**pick("lr", "betas", "final_lr", "gamma", "eps", "weight_decay")(hp), "ams_bound": True},
            ),
        ),
    ),
)

"""Schedule-Free AdamW and SGD, with ``train()`` and ``eval()`` as in the ``schedulefree`` package.

While training, the parameters hold ``y``, the point where gradients are taken; the point to
evaluate and to keep is the average ``x``. ``eval()`` writes ``x`` into the parameters and
``train()`` writes ``y`` back (both computed from the parameters and the state ``z``, with the
package's operations, so a switch and back reproduces the package's values); a step in eval
mode is refused. Each group records its mode in ``group["train_mode"]``, so a state dict taken
in either mode restores it with the parameters saved beside it.

Unlike the package, which starts in eval mode and refuses to step until ``train()`` is called,
an optimizer starts in train mode (as a ``torch.nn.Module`` does): before the first step the
three points coincide.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from optarena.optim.base import NamedOptimizer, Paper
from optarena.optim.execution import REMAINDER
from optarena.search_space import LogUniform, OneMinusLogUniform, SearchSpace
from optarena.spec import BETA_ERRORS, COMMON_ERRORS, LibraryPeer, Spec, TestPlan, configs, errors, pick
from optarena.transforms import AddDecayedWeights, ScaleByScheduleFreeRms, ScheduleFreeAverage, Transform
from optarena.transforms.schedule_free import momentum_of

SCHEDULE_FREE_PAPER = Paper(
    "Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky",
    2024,
    "The Road Less Scheduled",
    "https://arxiv.org/abs/2405.15682",
)


class ScheduleFreeModes:
    """``train()``/``eval()`` for an optimizer whose chain ends with ``ScheduleFreeAverage``."""

    momentum_key = "betas"

    def _initial_mode(self) -> None:
        for group in self.param_groups:
            group.setdefault("train_mode", True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self.param_groups[-1].setdefault("train_mode", self.param_groups[0].get("train_mode", True))

    @property
    def training(self) -> bool:
        """Whether the parameters hold the training point ``y`` (every group in train mode)."""
        return all(group.get("train_mode", True) for group in self.param_groups)

    @torch.no_grad()
    def eval(self) -> None:
        """Write the average ``x`` into the parameters (``x = y + (1 - 1/beta)(z - y)``); no-op if already there."""
        self._switch(to_train=False)

    @torch.no_grad()
    def train(self) -> None:
        """Write the training point ``y`` back (``y = x + (1 - beta)(z - x)``); no-op if already there."""
        self._switch(to_train=True)

    @torch.no_grad()
    def average_of(self, param: Tensor) -> Tensor:
        """The average ``x`` for ``param`` as a new tensor, the parameters left as they are (in eval
        mode, or before its first step, the parameter's value itself)."""
        group = next(g for g in self.param_groups if any(p is param for p in g["params"]))
        state = self.state.get(param, {})
        if not group.get("train_mode", True) or "z" not in state:
            return param.detach().clone()
        beta = momentum_of(group, self.momentum_key)
        return torch.lerp(param.detach(), state["z"].to(param.device), 1.0 - 1.0 / beta)

    def _switch(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group.get("train_mode", True) == to_train:
                continue
            beta = momentum_of(group, self.momentum_key)
            weight = 1.0 - beta if to_train else 1.0 - 1.0 / beta
            for p in group["params"]:
                state = self.state.get(p, {})
                if "z" not in state:
                    continue
                if REMAINDER in state:  # half precision: move the exact value, keep what rounding loses
                    exact = p.float() + state[REMAINDER]
                    exact.lerp_(state["z"].to(exact.device, torch.float32), weight)
                    p.copy_(exact)
                    state[REMAINDER].copy_(exact - p.float())
                else:
                    p.lerp_(state["z"].to(p.device), weight)
            group["train_mode"] = to_train

    def step(self, closure: Any = None) -> Any:
        """One step at ``y``; a ``RuntimeError`` (with nothing changed) in eval mode."""
        for index, group in enumerate(self.param_groups):
            if not group.get("train_mode", True):
                raise RuntimeError(
                    f"{type(self).__name__}: step() in eval mode (param_groups[{index}]): the parameters hold "
                    "the average x, not the training point y. Call optimizer.train() before training steps "
                    "and optimizer.eval() before evaluating or saving. Nothing was changed."
                )
        return super().step(closure)


class ScheduleFreeAdamW(ScheduleFreeModes, NamedOptimizer):
    """Schedule-Free AdamW: AdamW without a schedule; evaluate at the average of its iterates.

    Update rule::

        (k: the group's step, from 1; beta = betas[0])
        lr_k = lr * min(1, k / warmup_steps);  lr_max = max(lr_max, lr_k)
        w_k = k^r * lr_max^weight_lr_power;    c = w_k / (w_1 + ... + w_k)
        v = beta2 * v + (1 - beta2) * g^2;     u = g / (sqrt(v / (1 - beta2^k)) + eps) + weight_decay * y
        y = y + c * (z - y) + lr_k * (beta * (1 - c) - 1) * u
        z = z - lr_k * u
        (x = average of the z's, weighted by w; y = (1 - beta) z + beta x: the parameters while training)

    Call ``optimizer.eval()`` before evaluating or saving the model (the parameters become x)
    and ``optimizer.train()`` before training again.
    """

    paper = SCHEDULE_FREE_PAPER
    search_space = SearchSpace(
        {"lr": LogUniform(1e-4, 1e-1), "betas[0]": OneMinusLogUniform(0.5, 0.99), "weight_decay": LogUniform(1e-4, 0.5)}
    )

    def __init__(
        self,
        params: Any,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
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
            eps=eps,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )
        self._initial_mode()

    @classmethod
    def chain(cls) -> list[Transform]:
        return [ScaleByScheduleFreeRms(), AddDecayedWeights(), ScheduleFreeAverage()]


class ScheduleFreeSGD(ScheduleFreeModes, NamedOptimizer):
    """Schedule-Free SGD: SGD with momentum replaced by averaging; evaluate at the average.

    Update rule::

        (k: the group's step, from 1; beta = momentum)
        lr_k, lr_max, w_k and c as in ScheduleFreeAdamW
        u = g + weight_decay * y
        y = y + c * (z - y) + lr_k * (beta * (1 - c) - 1) * u
        z = z - lr_k * u

    Call ``optimizer.eval()`` before evaluating or saving the model and ``optimizer.train()``
    before training again.
    """

    paper = SCHEDULE_FREE_PAPER
    momentum_key = "momentum"
    search_space = SearchSpace({"lr": LogUniform(1e-3, 10.0), "momentum": OneMinusLogUniform(0.5, 0.99)})

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
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
            momentum=momentum,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            r=r,
            weight_lr_power=weight_lr_power,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            state_dtype=state_dtype,
            nonfinite=nonfinite,
        )
        self._initial_mode()

    @classmethod
    def chain(cls) -> list[Transform]:
        return [AddDecayedWeights(), ScheduleFreeAverage("momentum")]


@contextlib.contextmanager
def at_evaluation_point(optimizer: Any) -> Iterator[None]:
    """Within the block the parameters hold the point to evaluate: the average ``x`` for a
    Schedule-Free optimizer in train mode (``eval()``, then ``train()`` after), the parameters
    as they are for any other optimizer."""
    switch = isinstance(optimizer, ScheduleFreeModes) and optimizer.training
    if switch:
        optimizer.eval()
    try:
        yield
    finally:
        if switch:
            optimizer.train()


SPECS = (
    Spec(
        "schedule_free_adamw",
        ScheduleFreeAdamW,
        TestPlan(
            configs(
                {},
                ("lr-betas-eps-decay", {"lr": 0.01, "betas": (0.95, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
                ("warmup-r-power", {"warmup_steps": 10, "r": 0.5, "weight_lr_power": 1.0}),
            ),
            errors(
                COMMON_ERRORS,
                BETA_ERRORS[1:],
                [
                    ({"betas": (0.0, 0.999)}, "beta parameter at index 0: 0.0; allowed range: 0 < betas[0] < 1"),
                    ({"warmup_steps": -1}, "warmup_steps value: -1"),
                ],
            ),
            scheduled=False,  # lr = 0 stops z; y keeps moving towards z while its averaging weight is > 0
        ),
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "ScheduleFreeAdamW",
                pick("lr", "betas", "weight_decay", "r", "weight_lr_power", "warmup_steps", "eps"),
            ),
        ),
    ),
    Spec(
        "schedule_free_sgd",
        ScheduleFreeSGD,
        TestPlan(
            configs(
                ("minimum", {"lr": 0.1}),
                ("momentum-decay", {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1}),
                ("warmup-r", {"lr": 0.2, "warmup_steps": 5, "r": 1.0}),
            ),
            errors(COMMON_ERRORS, [({"momentum": 1.0}, "momentum value: 1.0; allowed range: 0 < momentum < 1")]),
            scheduled=False,
            descent_lr=0.05,
        ),
        settings={"lr": 0.1},
        peers=(
            LibraryPeer(
                "pytorch-optimizer",
                "ScheduleFreeSGD",
                pick("lr", "momentum", "weight_decay", "r", "weight_lr_power", "warmup_steps"),
            ),
        ),
    ),
)

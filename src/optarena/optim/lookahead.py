"""Lookahead: a wrapper that gives any torch.optim.Optimizer slow weights."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from optarena.hyperparameters import check_values
from optarena.optim.base import SKIP_COUNTER, Paper, position_label
from optarena.optim.execution import LOW_PRECISION, REMAINDER
from optarena.search_space import LogUniform, SearchSpace, Uniform
from optarena.spec import TestPlan, WrapperSpec, configs, errors
from optarena.transforms.lookahead import ALPHA, K, slow_copy
from optarena.transforms.sharding import local

_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


class Lookahead(torch.optim.Optimizer):
    """Lookahead: k steps of any optimizer forward, then one step back towards slow weights.

    Update rule::

        phi = theta at the first step (the slow weights, per parameter)
        every step:           the inner optimizer updates theta (the fast weights)
        after every k steps:  phi = phi + alpha * (theta - phi);  theta = phi
        the inner optimizer's state (momentum, moments) is kept across synchronisations

    Wraps any ``torch.optim.Optimizer``, optarena's or torch's:
    ``Lookahead(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), k=5, alpha=0.5)``,
    or by name, ``optarena.create("lookahead", params, inner="adam", k=5, alpha=0.5, lr=1e-3)``
    (every other keyword goes to the inner optimizer).

    The wrapper is a ``torch.optim.Optimizer`` whose ``param_groups`` are the inner
    optimizer's own list, so learning-rate schedulers drive the inner learning rate. Its
    ``state`` holds the slow weights (``slow_param``); its ``state_dict`` carries them, the
    step count and the inner optimizer's state dict, and ``load_state_dict`` restores all three.

    The k steps are counted as in the paper's Algorithm 1: calls of ``step()``, for all
    parameters together, except calls in which the inner optimizer skipped every param group
    (optarena's ``nonfinite="skip"``). A parameter's slow weights are created at the first
    step in which it has a gradient (its value until then is its initial value), so frozen
    parameters cost nothing. ``optarena.Ranger`` and ``optarena.RangerLARS`` use the same
    rule as a transform at the end of their chain, which counts each parameter's own updates.
    """

    paper: ClassVar[Paper] = Paper(
        "Zhang, Lucas, Hinton & Ba",
        2019,
        "Lookahead Optimizer: k steps forward, 1 step back",
        "https://arxiv.org/abs/1907.08610",
    )
    search_space: ClassVar[SearchSpace] = SearchSpace({"lr": LogUniform(1e-5, 1e-1), "alpha": Uniform(0.3, 0.9)})
    hyperparameters = {"k": K, "alpha": ALPHA}

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"Lookahead wraps a torch.optim.Optimizer, got {type(optimizer).__name__}: build the inner "
                "optimizer first, e.g. Lookahead(torch.optim.Adam(model.parameters()), k=5, alpha=0.5)"
            )
        check_values("Lookahead", self.hyperparameters, {"k": k, "alpha": alpha})
        self.optimizer = optimizer
        self.k = int(k)
        self.alpha = float(alpha)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.lookahead_step = 0
        self._signal_every = 0
        self._own_signals: dict[str, dict[str, float]] = {}
        """Counted steps since construction (the synchronisations happen at multiples of k)."""
        self._init_hooks()

    def _init_hooks(self) -> None:
        """The bookkeeping torch.optim.Optimizer.__init__ would create (hooks, profiled step)."""
        for name in _HOOK_DICTS:
            if name not in self.__dict__:
                setattr(self, name, OrderedDict())
        self._patch_step_function()

    # -- the inner optimizer's groups and defaults are ours ---------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The inner optimizer's own list: a scheduler that changes ``lr`` here changes the inner one."""
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = groups

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.optimizer.defaults

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer (its checks apply); slow weights follow at its first step."""
        self.optimizer.add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in _HOOK_DICTS}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_hooks()

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"

    # -- the step ---------------------------------------------------------------------------

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def record_signals(self, every: int = 1) -> None:
        """Record signals every ``every`` steps (0: never): the inner optimizer's own, where it
        records them (optarena's do), and ``lookahead_distance``, the distance of each parameter's
        fast weights from its slow ones before a synchronisation that falls on a recording step."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"record_signals: every must be an integer >= 0 (0 turns recording off), got {every!r}")
        self._signal_every = every
        if hasattr(self.optimizer, "record_signals"):
            self.optimizer.record_signals(every)

    @property
    def signals(self) -> dict[str, dict[str, float]]:
        """The signals of the last recording step: the inner optimizer's and Lookahead's own."""
        return {**getattr(self.optimizer, "signals", {}), **getattr(self, "_own_signals", {})}

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of the inner optimizer; every k-th counted step, the synchronisation."""
        # slow weights start at the value before a parameter's first update; with a closure the
        # gradients appear during the step, so every trainable parameter without slow weights
        # is remembered until we know whether it got one
        first = [
            p
            for p in self._params()
            if p not in self.state and (p.grad is not None or (closure is not None and p.requires_grad))
        ]
        before = {p: self._exact(p) if p.dtype in LOW_PRECISION else slow_copy(p) for p in first}
        skips = [group.get(SKIP_COUNTER, 0) for group in self.param_groups]
        loss = self.optimizer.step() if closure is None else self.optimizer.step(closure)
        stepped = [group for group, skipped in zip(self.param_groups, skips) if group.get(SKIP_COUNTER, 0) == skipped]
        if not stepped:
            return loss
        for group in stepped:
            for p in group["params"]:
                if p in before and p.grad is not None:
                    self.state[p]["slow_param"] = before[p]
        self.lookahead_step += 1
        every = getattr(self, "_signal_every", 0)
        recording = bool(every) and self.lookahead_step % every == 0
        if recording:
            self._own_signals = {}
        if self.lookahead_step % self.k == 0:
            if recording:
                self._own_signals["lookahead_distance"] = self._distances()
            self._synchronise()
        return loss

    @torch.no_grad()
    def _distances(self) -> dict[str, float]:
        """``||theta - phi||`` of each parameter with slow weights, by name or position."""
        out = {}
        for index, group in enumerate(self.param_groups):
            names = group.get("param_names")
            for position, p in enumerate(group["params"]):
                slow = self.state.get(p, {}).get("slow_param")
                if slow is None:
                    continue
                label = names[position] if names else position_label(index, position)
                fast = p.detach().float() if p.dtype in LOW_PRECISION else p.detach()
                out[label] = float(torch.linalg.vector_norm(fast - slow))
        return out

    def _remainder(self, p: Tensor) -> Tensor | None:
        """The inner optimizer's rounding remainder of a bf16/fp16 parameter, if it keeps one."""
        return self.optimizer.state.get(p, {}).get(REMAINDER)

    @torch.no_grad()
    def _exact(self, p: Tensor) -> Tensor:
        """A half-precision parameter's value in float32, with what rounding lost added back."""
        value = p.detach().float()
        remainder = self._remainder(p)
        return value + remainder.float() if remainder is not None else value

    @torch.no_grad()
    def _synchronise(self) -> None:
        # each rank moves the parts of sharded parameters it holds: the rule is elementwise
        fast = [p for p in self._params() if "slow_param" in self.state.get(p, {})]
        full = [p for p in fast if p.dtype not in LOW_PRECISION]
        if full:
            slow = [local(self.state[p]["slow_param"]) for p in full]
            params = [local(p) for p in full]
            torch._foreach_lerp_(slow, params, self.alpha)
            torch._foreach_copy_(params, slow)
        # bf16/fp16: slow weights are float32; the parameter takes them rounded, and the inner
        # optimizer's remainder (if any) keeps the difference, so nothing is lost to rounding
        for p in fast:
            if p.dtype not in LOW_PRECISION:
                continue
            slow = local(self.state[p]["slow_param"])
            slow.lerp_(local(self._exact(p)), self.alpha)
            local(p).copy_(slow)
            remainder = self._remainder(p)
            if remainder is not None:
                local(remainder).copy_(slow - local(p).float())

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """``state`` (slow weights by parameter index), ``param_groups``, ``inner`` (the inner
        optimizer's state dict) and ``lookahead`` (``k``, ``alpha`` and the step count)."""
        inner = self.optimizer.state_dict()
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: {"slow_param": s["slow_param"]} for p, s in self.state.items() if "slow_param" in s}
        return {
            "state": state,
            "param_groups": inner["param_groups"],
            "inner": inner,
            "lookahead": {"k": self.k, "alpha": self.alpha, "step": self.lookahead_step},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore the inner optimizer, the slow weights, ``k``, ``alpha`` and the step count."""
        missing = [key for key in ("state", "inner", "lookahead") if key not in state_dict]
        if missing:
            raise ValueError(
                f"Lookahead.load_state_dict: not a Lookahead state dict (missing {', '.join(map(repr, missing))}); "
                "to load the inner optimizer's own state dict, call optimizer.optimizer.load_state_dict(...)"
            )
        settings = state_dict["lookahead"]
        check_values("Lookahead", self.hyperparameters, settings)
        self.optimizer.load_state_dict(state_dict["inner"])
        params = self._params()
        restored: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for index, saved in state_dict["state"].items():
            if not 0 <= int(index) < len(params):
                raise ValueError(
                    f"Lookahead.load_state_dict: slow weights for parameter {index}, but the optimizer has "
                    f"{len(params)} parameters"
                )
            p = params[int(index)]
            slow = saved["slow_param"]
            if slow.shape != p.shape:
                raise ValueError(
                    f"Lookahead.load_state_dict: slow weights of shape {tuple(slow.shape)} for parameter {index} "
                    f"of shape {tuple(p.shape)}"
                )
            dtype = slow.dtype if p.dtype in LOW_PRECISION else p.dtype
            restored[p]["slow_param"] = slow.detach().to(device=p.device, dtype=dtype).clone()
        self.state = restored
        self.k = int(settings["k"])
        self.alpha = float(settings["alpha"])
        self.lookahead_step = int(settings["step"])


SPECS = (
    WrapperSpec(
        "lookahead",
        Lookahead,
        TestPlan(
            configs(
                {},
                ("sgd-momentum-k-alpha", {"inner": "sgd", "lr": 0.05, "momentum": 0.9, "k": 3, "alpha": 0.8}),
                ("adamw-every-step", {"inner": "adamw", "weight_decay": 0.1, "k": 1, "alpha": 1.0}),
                ("rmsprop-centered", {"inner": "rmsprop", "centered": True, "k": 2, "alpha": 0.3}),
            ),
            errors(
                [
                    ({"k": 0}, "k: 0; allowed: k an integer >= 1"),
                    ({"alpha": 1.5}, "alpha value: 1.5; allowed range: 0 <= alpha <= 1"),
                    ({"inner": "adamm"}, "Did you mean 'adam'"),
                    ({"lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr"),
                ]
            ),
            reference_state_loads=False,
            sync_period=5,
        ),
        description=(Lookahead.__doc__ or "").strip().splitlines()[0],
        space=Lookahead.search_space,
        inner="adam",
    ),
)

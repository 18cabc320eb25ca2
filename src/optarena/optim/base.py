"""The optimizer front: a ``torch.optim.Optimizer`` that runs a chain of transforms.

One code path serves every optimizer: gather the parameters that have a gradient, check
the non-finite policy, bucket by device and dtype, advance the step counts, run the
transforms over each bucket's list of tensors and add the result to the parameters.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from optarena.hyperparameters import (
    Choice,
    Flag,
    Hyper,
    Optional,
    check_values,
    strict_keywords,
    unknown_keyword_error,
)
from optarena.optim import fused as fused_backend
from optarena.optim.execution import LOW_PRECISION, eager_update
from optarena.search_space import LogUniform, SearchSpace
from optarena.transforms import sharding
from optarena.transforms.base import Transform, local_view

NONFINITE_POLICIES = ("ignore", "skip", "raise")

CORE_HYPERPARAMETERS: dict[str, Hyper] = {
    "maximize": Hyper(False, Flag(), "maximise the objective instead of minimising it"),
    "foreach": Hyper(
        None,
        Optional(Flag()),
        "multi-tensor operations over all parameters (None or True) or one parameter at a time (False)",
    ),
    "fused": Hyper(
        None,
        Optional(Flag()),
        "compile the whole chain into fused kernels (True), never (False), or when a group holds "
        "at least 2**20 elements (None)",
    ),
    "state_dtype": Hyper(
        None,
        Optional(Choice(("float32", "bfloat16"))),
        "state dtype for bf16/fp16 parameters: 'float32' (None means this) or 'bfloat16'; "
        "other parameters keep state in their own dtype",
    ),
    "nonfinite": Hyper(
        "ignore",
        Choice(NONFINITE_POLICIES),
        "non-finite gradients: 'ignore' (update anyway, as torch.optim), 'skip' the group's step, or 'raise'",
    ),
}

SKIP_COUNTER = "nonfinite_skips"
"""Param-group key counting the steps skipped under ``nonfinite='skip'``."""


def arguments(constructor_locals: dict[str, Any]) -> dict[str, Any]:
    """A named optimizer's keyword arguments, from ``locals()`` at the top of its ``__init__``.

    Every constructor keeps torch's explicit signature and passes it on whole:
    ``super().__init__(params, **arguments(locals()))``.
    """
    return {k: v for k, v in constructor_locals.items() if k not in ("self", "params", "__class__")}


@dataclass(frozen=True)
class Paper:
    """Where an optimizer was published."""

    authors: str
    year: int
    title: str
    url: str

    def cite(self) -> str:
        return f"{self.authors} ({self.year}), {self.title}"


def _bucket(params: list[Tensor], per_tensor: bool, kind: Any = None) -> list[list[Tensor]]:
    """Split parameters into lists sharing device, dtype, device mesh (none for plain tensors) and
    ``kind(p)`` (one each when ``per_tensor``)."""
    if per_tensor:
        return [[p] for p in params]
    buckets: dict[tuple[Any, ...], list[Tensor]] = {}
    for p in params:
        mesh = sharding.mesh_of(p)
        key = (p.device, p.dtype, None if mesh is None else id(mesh), kind(p) if kind else None)
        buckets.setdefault(key, []).append(p)
    return list(buckets.values())


def first_nonfinite(tensors: Sequence[Tensor]) -> int | None:
    """Index of the first tensor holding a NaN or an infinity, or None (multi-tensor check).

    A sparse tensor is judged by its stored values. For sharded tensors (``DTensor``) the
    answer is the same on every rank: each rank checks its parts, and one collective per mesh
    dimension shares the verdicts.
    """
    stored = [t._values() if t.is_sparse else t for t in tensors]
    parts = [local_view(t) for t in stored]
    flags = torch.zeros(len(stored), dtype=torch.uint8)
    candidates = [i for i, t in enumerate(parts) if t.numel() > 0]
    by_kind: dict[tuple[Any, ...], list[int]] = {}
    for i in candidates:
        by_kind.setdefault((parts[i].device, parts[i].dtype), []).append(i)
    for indices in by_kind.values():
        largest = torch._foreach_norm([parts[i] for i in indices], math.inf)
        bad = ~torch.isfinite(torch.stack(largest))
        if bool(bad.any()):
            flags[torch.tensor(indices)[bad.cpu()]] = 1
    sharded = [t for t in stored if sharding.is_sharded(t)]
    if sharded:
        device = parts[stored.index(sharded[0])].device  # where the mesh's backend communicates
        flags = sharding.any_flag(flags.to(device), sharded).cpu()
    found = flags.nonzero()
    return int(found[0]) if len(found) else None


class ChainOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` whose update is a chain of :class:`Transform` objects.

    Subclasses (the named optimizers) supply the chain and the defaults; users build their
    own with :class:`Chain`. The hyperparameters every optimizer has:

    - ``maximize`` (False): ascend instead of descend.
    - ``foreach`` (None): multi-tensor operations (None/True) or one tensor at a time (False).
    - ``nonfinite`` ("ignore"): what a NaN or infinite gradient does. ``"ignore"`` updates
      as torch.optim does; ``"skip"`` leaves the group's parameters and state untouched for
      that step and counts it in ``group["nonfinite_skips"]``; ``"raise"`` raises
      ``FloatingPointError`` naming the parameter and the step, before anything changes.
    """

    supports_sparse: ClassVar[bool] = False

    def __init__(self, params: Any, transforms: Sequence[Transform], defaults: dict[str, Any]):
        self.transforms = tuple(transforms)
        self.hyperparameters = self.declared_hyperparameters(transforms)
        check_values(type(self).__name__, self.hyperparameters, defaults)
        self._steps_called = 0
        self._fused_plans: dict[Any, fused_backend.ChunkPlan] = {}
        """Fused path: each bucket's chunked arguments, reused from step to step."""
        super().__init__(params, defaults)

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def declared_hyperparameters(transforms: Sequence[Transform]) -> dict[str, Hyper]:
        """Every param-group key the chain reads, with its default and allowed values."""
        declared = dict(CORE_HYPERPARAMETERS)
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"expected optarena.transforms.Transform objects, got {t!r}")
            declared.update(t.hyperparameters)
        return declared

    @property
    def uses_step(self) -> bool:
        return any(t.uses_step for t in self.transforms)

    @property
    def supports_complex(self) -> bool:
        return all(t.elementwise for t in self.transforms)

    def composition(self) -> str:
        """The chain as text, e.g. ``scale_by_adam -> scale_by_learning_rate``."""
        return " -> ".join(t.describe() for t in self.transforms)

    def check_group(self, group: dict[str, Any]) -> None:
        """Checks that involve several hyperparameters of one group (override to add some)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        check_values(type(self).__name__, self.hyperparameters, merged)
        if merged.get("fused") and merged.get("foreach"):
            raise ValueError(f"{type(self).__name__}: fused=True and foreach=True cannot be combined; choose one")
        self.check_group(merged)
        params = param_group["params"]
        tensors = [params] if isinstance(params, Tensor) else list(params)
        named = [p[1] if isinstance(p, tuple) else p for p in tensors]
        if not self.supports_complex and any(isinstance(p, Tensor) and p.is_complex() for p in named):
            raise ValueError(
                f"{type(self).__name__} does not support complex parameters: its update is not "
                "elementwise. Use an elementwise optimizer, or optimise the real and imaginary parts."
            )
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the fused path's chunk plans (torch.optim keeps only defaults, state and
        groups, which would lose the chain: a copy or an unpickled optimizer must still step)."""
        return {key: value for key, value in self.__dict__.items() if key != "_fused_plans"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fused_plans = {}
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's loader, keeping scalar state (such as ``step``) in its saved dtype.

        torch.optim casts floating-point state to the parameter's dtype; the state of a
        bf16/fp16 parameter keeps its saved dtype instead (float32 by default), so a reload
        continues bit for bit. A state dict saved by the torch.optim optimizer of the same
        name loads too: the keys it lacks (``nonfinite``) take this optimizer's defaults.
        """
        super().load_state_dict(state_dict)
        self._fused_plans.clear()
        scalar_keys = {key for t in self.transforms for key in t.scalar_state_keys}
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, param in zip(saved_ids, params):
            saved = state_dict["state"].get(saved_id, {})
            keep = set(saved) if param.dtype in LOW_PRECISION else scalar_keys.intersection(saved)
            for key in keep:
                value = saved[key]
                if isinstance(value, Tensor) and value.is_floating_point():
                    device = value.device if key in scalar_keys else param.device
                    self.state[param][key] = value.to(device=device, copy=True)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    # -- the step -------------------------------------------------------------------------

    def _label(self, group_index: int, group: dict[str, Any], param: Tensor) -> str:
        index = next(i for i, p in enumerate(group["params"]) if p is param)
        names = group.get("param_names")
        where = f"param_groups[{group_index}]['params'][{index}]"
        shape = tuple(param.shape)
        return f"{names[index]!r} ({where}, shape {shape})" if names else f"{where} (shape {shape})"

    def _step_number(self, param: Tensor) -> int:
        step = self.state.get(param, {}).get("step")
        return int(step) + 1 if step is not None else self._steps_called

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Run one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._steps_called += 1
        plan: list[tuple[dict[str, Any], list[Tensor] | None]] = []
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not self.supports_sparse:
                for p in params:
                    if p.grad.is_sparse:
                        raise RuntimeError(
                            f"{type(self).__name__} does not support sparse gradients, found one for "
                            f"{self._label(index, group, p)}. Use an optimizer that does (such as "
                            "torch.optim.SparseAdam), or make the layer produce dense gradients."
                        )
            self._check_placements(index, group, params)
            policy = group.get("nonfinite", "ignore")
            if policy != "ignore" and params:
                bad = first_nonfinite([p.grad for p in params])
                if bad is not None:
                    if policy == "raise":
                        p = params[bad]
                        raise FloatingPointError(
                            f"{type(self).__name__}: non-finite gradient for {self._label(index, group, p)} "
                            f"at step {self._step_number(p)}; no parameter or state was changed. "
                            "Pass nonfinite='skip' to skip such steps, or 'ignore' to update anyway."
                        )
                    plan.append((group, None))
                    continue
            plan.append((group, params))
        for group, params in plan:
            if params is None:
                group[SKIP_COUNTER] = group.get(SKIP_COUNTER, 0) + 1
            elif params:
                self._update_group(group, params)
        return loss

    def _check_placements(self, group_index: int, group: dict[str, Any], params: list[Tensor]) -> None:
        """Refuse, before anything changes, sharded parameters whose placements the chain cannot step."""
        uses_shapes = any(t.uses_shapes() for t in self.transforms)
        for p in params:
            problem = sharding.unsupported_placement(p, uses_shapes)
            if problem is not None:
                raise ValueError(
                    f"{type(self).__name__} cannot step {self._label(group_index, group, p)}: its placement "
                    f"{problem}; no parameter or state was changed."
                )

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        fuse = fused_backend.should_fuse(group, params)
        keyed = [t for t in self.transforms if type(t).bucket_key is not Transform.bucket_key]
        kind = (lambda p: tuple(t.bucket_key(p) for t in keyed)) if keyed else None
        for bucket in _bucket(params, per_tensor=group.get("foreach") is False and not fuse, kind=kind):
            states = [self.state[p] for p in bucket]
            # per-tensor quantities of sharded tensors are completed across ranks, eagerly
            mode = sharding.step_mode(self.transforms, bucket)
            if fuse and mode == sharding.LOCAL:
                fused_backend.fused_update(self.transforms, group, bucket, states, self.uses_step, self._fused_plans)
            else:
                eager_update(self.transforms, group, bucket, states, self.uses_step, mode)


class Chain(ChainOptimizer):
    """An optimizer built from your own list of transforms.

    Every hyperparameter the transforms read takes its declared default unless given here
    (and per param group, as with any ``torch.optim`` optimizer). Example: LAMB-style Adam
    with decoupled weight decay::

        Chain(model.parameters(),
              [ScaleByAdam(), AddDecayedWeights(), ScaleByLearningRate()],
              lr=1e-3, weight_decay=0.01)
    """

    def __init__(self, params: Iterable[Any], transforms: Sequence[Transform], **hyperparameters: Any):
        declared = self.declared_hyperparameters(transforms)
        for key in hyperparameters:
            if key not in declared:
                raise unknown_keyword_error(type(self).__name__, key, list(declared))
        defaults = {key: hyper.default for key, hyper in declared.items()}
        defaults.update(hyperparameters)
        super().__init__(params, transforms, defaults)


class NamedOptimizer(ChainOptimizer):
    """Base of the named optimizers: a fixed chain, a paper, strict keyword arguments.

    Subclasses define ``chain()`` (the transforms), ``paper`` and a torch-style ``__init__``
    that passes its arguments as the defaults. ``registry_name`` is the name in
    :func:`optarena.create` (the lower-cased class name unless set); ``search_space``
    declares the hyperparameters a tuner may vary.
    """

    paper: ClassVar[Paper | None] = None
    registry_name: ClassVar[str | None] = None
    search_space: ClassVar[SearchSpace] = SearchSpace({"lr": LogUniform(1e-5, 1e-1)})
    """What a tuner may vary, and over what range; the learning rate first."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = strict_keywords(cls.__dict__["__init__"])  # type: ignore[method-assign]
        if "__doc__" in cls.__dict__ and cls.__doc__:
            cls.__doc__ = inspect.cleandoc(cls.__doc__) + "\n\n" + cls.reference_text()

    @classmethod
    def defaults_from_signature(cls) -> dict[str, Any]:
        """The constructor's keyword arguments and their defaults (``params`` excluded)."""
        signature = inspect.signature(cls.__init__)
        return {
            name: p.default
            for name, p in signature.parameters.items()
            if name not in ("self", "params") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    @classmethod
    def reference_text(cls) -> str:
        """Arguments, composition and paper, generated from the declarations (docstring tail)."""
        declared = cls.declared_hyperparameters(cls.chain())
        lines = ["Arguments:"]
        for name, default in cls.defaults_from_signature().items():
            hyper = declared.get(name)
            shown = "required" if default is inspect.Parameter.empty else f"default {default!r}"
            if hyper is None:
                lines.append(f"    {name} ({shown})")
            else:
                lines.append(f"    {name} ({shown}): {hyper.doc}; allowed: {hyper.constraint.describe(name)}")
        lines.append("")
        lines.append("Composition: " + " -> ".join(t.describe() for t in cls.chain()))
        if cls.paper is not None:
            lines.append(f"Paper: {cls.paper.cite()}, {cls.paper.url}")
        return "\n".join(lines)

    @classmethod
    def chain(cls) -> list[Transform]:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """The docstring's first line."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    def __init__(self, params: Any, **defaults: Any):
        super().__init__(params, self.chain(), defaults)

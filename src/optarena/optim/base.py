"""The optimizer front: a ``torch.optim.Optimizer`` that runs a chain of transforms.

One code path serves every optimizer: gather the parameters that have a gradient, check
the non-finite policy, bucket by device and dtype, advance the step counts, run the
transforms over each bucket's list of tensors and add the result to the parameters. Each
group's plan (its buckets and how each runs) is kept between steps while the facts it rests on
hold (:mod:`optarena.optim.step_cache`).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

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
from optarena.optim import compiled
from optarena.optim.checkpoints import steps_as_tensors
from optarena.optim.chunks import ChunkPlan
from optarena.optim.compiled import structure
from optarena.optim.execution import LOW_PRECISION, REMAINDER, state_dtype_for
from optarena.optim.fused import step_bucket
from optarena.optim.group_pass import CompiledSums
from optarena.optim.groups import ChangeTracker, check_group_keys
from optarena.optim.planning import BreakEven, Bucket, BucketPlan, compile_group, kernel_plan, plan_bucket
from optarena.optim.routing import Partition
from optarena.optim.step_cache import Facts, GroupPlan, kernel_refused_for_state
from optarena.optim.step_modes import check_capturable, check_differentiable
from optarena.search_space import LogUniform, SearchSpace
from optarena.transforms import sharding
from optarena.transforms.base import StepContext, Transform, local_view
from optarena.transforms.matrix import has_matrix_transform

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
    "differentiable": Hyper(
        False,
        Flag(),
        "record the step for autograd (torch.optim's meaning): the updated parameters can be "
        "differentiated with respect to the parameters, gradients and state before it",
    ),
    "capturable": Hyper(
        False,
        Flag(),
        "torch.optim's CUDA-graph flag: True is refused at the step off a GPU, as in torch; "
        "optarena's step itself cannot be captured in a CUDA graph",
    ),
}

SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum", "swa_lr")
"""Param-group keys that torch.optim.lr_scheduler and torch.optim.swa_utils add to groups."""

BOOKKEEPING_KEYS = ("params", "param_names")
"""Param-group keys of torch.optim.Optimizer itself."""

SKIP_COUNTER = "nonfinite_skips"
"""Param-group key counting the steps skipped under ``nonfinite='skip'``."""

STEP_KEY = "step"


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


def position_label(group_index: int, position: int) -> str:
    """How a parameter without a name is called in messages and signals: its place in the groups."""
    return f"param_groups[{group_index}]['params'][{position}]"


def first_nonfinite(tensors: Sequence[Tensor]) -> int | None:
    """Index of the first tensor holding a NaN or an infinity, or None (multi-tensor check).

    A sparse tensor is judged by its values once duplicate indices are summed (as the update
    sees them); a tensor on the meta device has no values and passes. For sharded tensors
    (``DTensor``) the answer is the same on every rank: each rank checks its parts, and one
    collective per mesh dimension shares the verdicts.
    """
    stored = [t.coalesce()._values() if t.is_sparse else t for t in tensors]
    parts = [local_view(t) for t in stored]
    flags = torch.zeros(len(stored), dtype=torch.uint8)
    candidates = [i for i, t in enumerate(parts) if t.numel() > 0 and not t.is_meta]
    by_kind: dict[tuple[Any, ...], list[int]] = {}
    for i in candidates:
        by_kind.setdefault((parts[i].device, parts[i].dtype), []).append(i)
    for indices in by_kind.values():
        largest = torch._foreach_norm([parts[i] for i in indices], math.inf)
        bad = ~torch.isfinite(torch.stack(largest))
        if bool(bad.any()):
            flags[torch.tensor(indices)[bad.cpu()]] = 1
    sharded = [i for i, t in enumerate(stored) if sharding.is_sharded(t)]
    if sharded:
        device = parts[sharded[0]].device  # where the mesh's backend communicates
        flags = sharding.any_flag(flags.to(device), [stored[i] for i in sharded]).cpu()
    found = flags.nonzero()
    return int(found[0]) if len(found) else None


def describe_chain(chain: Sequence[Transform] | Partition) -> str:
    """A chain as text (``scale_by_adam -> scale_by_learning_rate``), or a partition's chains."""
    if isinstance(chain, Partition):
        return chain.describe()
    return " -> ".join(t.describe() for t in chain)


def _declaration(hyper: Hyper) -> str:
    return f"default {hyper.default!r}, {hyper.doc or 'no description'}"


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
    - ``differentiable`` and ``capturable`` (False), where torch.optim has them, with its
      meaning (:mod:`optarena.optim.step_modes`).

    Param groups are as strict as the keywords: an unknown key is a ``TypeError`` (at
    construction, in ``add_param_group`` and ``load_state_dict``), and values changed in a
    group after construction are checked again at the next step (:mod:`optarena.optim.groups`).
    """

    supports_sparse: ClassVar[bool] = False
    foreign_group_keys: ClassVar[Mapping[str, Any]] = {}
    """Keys of a related optimizer's state dict that load only at their neutral value (LazyAdam
    loads torch.optim.Adam's ``weight_decay=0``); any other value is refused."""

    def __init__(self, params: Any, transforms: Sequence[Transform] | Partition, defaults: dict[str, Any]):
        self.routing = transforms if isinstance(transforms, Partition) else None
        """The chains by label and the rule that picks one per parameter (``optarena.partition``);
        None for one chain."""
        self.transforms = transforms.transforms if isinstance(transforms, Partition) else tuple(transforms)
        """Every transform the optimizer runs (of every chain, when it routes)."""
        self.hyperparameters = self.declared_hyperparameters(transforms)
        check_values(type(self).__name__, self.hyperparameters, defaults)
        self._group_defaults = dict(defaults)
        """The keys and defaults every group carries (torch.optim adds ``differentiable`` to
        ``defaults`` on its own; groups get it only where the constructor has it)."""
        self._steps_called = 0
        self._fused_plans: dict[Any, ChunkPlan] = {}
        """Fused path: each bucket's chunked arguments, reused from step to step."""
        self._kept_plans: dict[int, GroupPlan] = {}
        """Each group's plan (by the group's id), reused while its facts hold (:mod:`optarena.optim.step_cache`)."""
        self._checked = ChangeTracker(self.hyperparameters)
        """The hyperparameter values each group was last validated with."""
        self._signal_every = 0
        self._break_even: dict[int, BreakEven] = {}
        """``fused=None``: each group's time lost to eager steps, until compiling pays (:class:`BreakEven`)."""
        self.signals: dict[str, dict[str, float]] = {}
        """The signals of the last step that recorded them (:meth:`record_signals`):
        ``{signal: {parameter: value}}``, parameters by name where they have one."""
        super().__init__(params, defaults)

    # -- construction -------------------------------------------------------------------

    @staticmethod
    def declared_hyperparameters(transforms: Sequence[Transform] | Partition) -> dict[str, Hyper]:
        """Every param-group key the chain reads, with its default and allowed values.

        Transforms may share a key only when they declare it alike (``weight_decay`` read by
        two decay terms); two declarations of one key with different defaults, ranges or
        meanings are a TypeError, which names the way to keep them apart (:meth:`Transform.bind`).
        """
        declared = dict(CORE_HYPERPARAMETERS)
        if isinstance(transforms, Partition):
            declared.update(transforms.declared())
            transforms = transforms.transforms
        owners = {key: "the optimizer" for key in declared}
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"expected optarena.transforms.Transform objects, got {t!r}")
            for key, hyper in t.bound_hyperparameters().items():
                if key in declared and declared[key] != hyper:
                    raise TypeError(
                        f"{t.name} and {owners[key]} both read the param-group key {key!r} with different "
                        f"meanings ({_declaration(declared[key])} against {_declaration(hyper)}); give one "
                        f"its own key, e.g. {type(t).__name__}().bind({key}={t.name + '_' + key!r}), or fix "
                        f"its value, e.g. {type(t).__name__}({key}=...)"
                    )
                declared[key] = hyper
                owners.setdefault(key, t.name)
        return declared

    @property
    def uses_step(self) -> bool:
        return any(t.uses_step for t in self.transforms)

    @property
    def supports_complex(self) -> bool:
        return all(t.elementwise for t in self.transforms)

    def composition(self) -> str:
        """The chain as text, e.g. ``scale_by_adam -> scale_by_learning_rate``."""
        return describe_chain(self.routing if self.routing is not None else self.transforms)

    def check_group(self, group: dict[str, Any]) -> None:
        """Checks that involve several hyperparameters of one group (override to add some)."""

    def valid_group_keys(self) -> frozenset[str]:
        """The keys a param group may hold: the chain's hyperparameters, the constructor's
        arguments, torch.optim's own keys and those its lr schedulers add."""
        written = [key for t in self.transforms for key in t.group_keys]
        return frozenset(
            (*self.hyperparameters, *written, *self._group_defaults, *BOOKKEEPING_KEYS, *SCHEDULER_KEYS, SKIP_COUNTER)
        )

    def _check_combinations(self, group: dict[str, Any]) -> None:
        """Checks across the keys of a complete group (every key present)."""
        name = type(self).__name__
        if group.get("fused") and group.get("foreach"):
            raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together; choose one")
        if group.get("fused") and group.get("differentiable"):
            raise RuntimeError(f"{name}: `fused` does not support `differentiable`; pass fused=False or None")
        self.check_group(group)

    def _check_new_group(self, group: dict[str, Any], where: str) -> None:
        """Keys, values and combinations of a group about to be added or loaded (complete with defaults)."""
        name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{name}: {where} must be a dict, got {type(group).__name__}")
        check_group_keys(name, group, self.valid_group_keys() | frozenset(self.foreign_group_keys), where)
        for key, neutral in self.foreign_group_keys.items():
            if key in group and not (group[key] is neutral or group[key] == neutral):
                raise ValueError(
                    f"{name}: {where} sets {key}={group[key]!r}, which {name} does not have; "
                    f"only {key}={neutral!r} (no effect) can be loaded"
                )
        merged = {**self._group_defaults, **{k: v for k, v in group.items() if k != "params"}}
        check_values(name, self.hyperparameters, merged)
        self._check_combinations(merged)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch.optim's ``add_param_group``, after checking the group's keys and values.

        A key that no part of this optimizer reads is a ``TypeError`` naming the closest valid
        one; nothing is added when a check fails.
        """
        self._check_new_group(param_group, "the param group")
        params = param_group["params"]
        if isinstance(params, Tensor):
            tensors = [params]
        elif isinstance(params, set):  # torch.optim's own error (sets have no order)
            tensors = []
        else:  # a generator can be read once: keep the list, as torch.optim does
            tensors = param_group["params"] = list(params)
        named = [p[1] if isinstance(p, tuple) else p for p in tensors]
        if not self.supports_complex and any(isinstance(p, Tensor) and p.is_complex() for p in named):
            raise ValueError(
                f"{type(self).__name__} does not support complex parameters: its update is not "
                "elementwise. Use an elementwise optimizer, or optimise the real and imaginary parts."
            )
        super().add_param_group(param_group)
        self._checked.remember(self.param_groups[-1])

    def __getstate__(self) -> dict[str, Any]:
        """Everything but what is kept between steps (chunk plans, step plans, checked values)
        (torch.optim keeps only defaults, state and groups, which would lose the chain: a copy
        or an unpickled optimizer must still step)."""
        skip = ("_fused_plans", "_kept_plans", "_checked", "_break_even")
        return {key: value for key, value in self.__dict__.items() if key not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fused_plans = {}
        self._kept_plans = {}
        self._break_even = {}  # keyed by the groups' identities, which a copy does not keep
        self._checked = ChangeTracker(self.hyperparameters)
        if "_group_defaults" not in self.__dict__:  # pickled before groups were checked
            self._group_defaults = dict(self.defaults)
        self._fill_group_defaults()

    def _fill_group_defaults(self) -> None:
        for group in self.param_groups:
            for key, value in self._group_defaults.items():
                group.setdefault(key, value)

    def _check_loadable(self, state_dict: dict[str, Any]) -> None:
        """Refuse, before anything changes, a state dict this optimizer could not step from."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(
                f"{name}: a state dict is a dict with 'state' and 'param_groups', got {type(state_dict).__name__}"
            )
        groups, state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, Sequence) or not isinstance(state, Mapping):
            raise ValueError(f"{name}: the state dict's 'param_groups' must be a list and its 'state' a dict")
        for index, group in enumerate(groups):
            self._check_new_group(group, f"the state dict's param_groups[{index}]")
        allowed = self.state_keys()
        for param_id, entry in state.items():
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"{name}: the state dict's state[{param_id!r}] must be a dict, got {type(entry).__name__}"
                )
            foreign = sorted(map(str, set(entry) - allowed))
            if foreign:
                raise ValueError(
                    f"{name}: the state dict's state[{param_id!r}] holds {', '.join(map(repr, foreign))}, which "
                    f"this optimizer ({self.composition()}) does not keep; it keeps {', '.join(sorted(allowed))}. "
                    "Was it saved by another optimizer? Nothing was loaded."
                )

    def state_keys(self) -> frozenset[str]:
        """Every per-parameter state key this optimizer may keep."""
        keys = {STEP_KEY, REMAINDER}
        for t in self.transforms:
            keys.update(t.state_keys)
            keys.update(t.scalar_state_keys)
        return frozenset(keys)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's loader, after checking that this optimizer can continue from the state dict.

        Refused, with nothing changed: a param group with a key this optimizer does not have
        (``TypeError``) or an invalid value, and per-parameter state that this optimizer's chain
        does not keep, such as Adafactor's factored moments offered to Adam (``ValueError``).
        torch.optim casts floating-point state to the parameter's dtype; the state of a
        bf16/fp16 parameter keeps its saved dtype instead (float32 by default), so a reload
        continues bit for bit. A state dict saved by the torch.optim optimizer of the same
        name loads too: the keys it lacks (``nonfinite``) take this optimizer's defaults, a
        ``step`` saved as a plain number (torch 1.11 and older) becomes a tensor, and sparse
        state (torch.optim.SGD's momentum buffer for sparse gradients) becomes dense.
        """
        self._check_loadable(state_dict)
        super().load_state_dict(state_dict)
        self._fused_plans.clear()
        self._kept_plans.clear()
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
        steps_as_tensors(self.state.values())
        for entry in self.state.values():  # torch.optim.SGD keeps a sparse momentum buffer for sparse gradients
            for key, value in entry.items():
                if isinstance(value, Tensor) and value.is_sparse:
                    entry[key] = value.to_dense()
        self._fill_group_defaults()
        self._checked.forget_all()
        for group in self.param_groups:
            self._checked.remember(group)

    # -- checks at the step ---------------------------------------------------------------

    def _check_before_step(self) -> None:
        """Validate what changed in the groups since they were last checked; nothing changes on failure.

        A scheduler or user code may write any value into a group after construction; the
        values are checked again here, at the first step after they changed (unchanged groups
        cost a comparison of their values' identities, no tensor is read).
        """
        name = type(self).__name__
        for index, group in enumerate(self.param_groups):
            changed = self._checked.changed(group)
            if not changed:
                continue
            for key in changed:
                try:
                    self.hyperparameters[key].constraint.check(key, group[key])
                except (TypeError, ValueError) as error:
                    raise type(error)(
                        f"{name}: param_groups[{index}][{key!r}] = {group[key]!r} was set after construction "
                        f"and is invalid: {error}. Nothing was updated."
                    ) from None
            complete = {**self._group_defaults, **group}
            try:
                self._check_combinations(complete)
            except (TypeError, ValueError, RuntimeError) as error:
                raise type(error)(
                    f"{error} (param_groups[{index}], changed after construction; nothing was updated)"
                ) from None
            self._checked.remember(group, changed)
        for group in self.param_groups:
            if group.get("capturable"):
                check_capturable(name, group)
            if group.get("differentiable"):
                check_differentiable(name, group, self.hyperparameters)

    # -- the step -------------------------------------------------------------------------

    @staticmethod
    def _position(group_index: int, group: dict[str, Any], param: Tensor) -> str:
        return position_label(group_index, next(i for i, p in enumerate(group["params"]) if p is param))

    def _label(self, group_index: int, group: dict[str, Any], param: Tensor) -> str:
        index = next(i for i, p in enumerate(group["params"]) if p is param)
        names = group.get("param_names")
        where = self._position(group_index, group, param)
        shape = tuple(param.shape)
        return f"{names[index]!r} ({where}, shape {shape})" if names else f"{where} (shape {shape})"

    def check_gradients(self, index: int, group: dict[str, Any], params: list[Tensor]) -> None:
        """Refuse gradients this optimizer cannot use, before any group is updated (sparse ones
        unless ``supports_sparse``)."""
        if self.supports_sparse:
            return
        for p in params:
            if cast(Tensor, p.grad).is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients, found one for "
                    f"{self._label(index, group, p)}. Use an optimizer that does (such as "
                    "torch.optim.SparseAdam), or make the layer produce dense gradients."
                )

    def _step_number(self, param: Tensor) -> int:
        step = self.state.get(param, {}).get("step")
        return int(step) + 1 if step is not None else self._steps_called

    def step(self, closure: Any = None) -> Any:
        """Run one update; ``closure`` re-evaluates the model and returns the loss.

        The step runs without autograd, unless the optimizer was built with
        ``differentiable=True`` (as torch.optim decides, from the constructor's setting).
        """
        self._check_before_step()
        with torch.set_grad_enabled(bool(self.defaults.get("differentiable", False))):
            return self._step(closure)

    def _step(self, closure: Any) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._steps_called += 1
        if self._recording():
            self.signals = {}
        plan: list[tuple[dict[str, Any], list[Tensor] | None]] = []
        kept = self._kept_plans
        if len(kept) > len(self.param_groups):  # groups taken out of param_groups keep no plan
            present = {id(group) for group in self.param_groups}
            for key in [key for key in kept if key not in present]:
                del kept[key]
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            known = kept.get(id(group))
            if known is None or not known.current(group, params, self._routing_key, self._steps_called):
                self.check_gradients(index, group, params)
                self._check_placements(index, group, params)
            elif type(self).check_gradients is not ChainOptimizer.check_gradients:
                self.check_gradients(index, group, params)  # a subclass's own checks may read values
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

    def _buckets(self, group: dict[str, Any], params: list[Tensor], per_tensor: bool) -> list[Bucket]:
        """``params`` of ``group`` in buckets: device, dtype, mesh, route and the transforms'
        ``bucket_key`` (one tensor each with ``per_tensor``)."""
        names = dict(zip(map(id, group["params"]), group.get("param_names") or ()))
        routes = {}
        if self.routing is not None:
            routes = {id(p): self.routing.label(names.get(id(p)), p, group) for p in params}

        def chain(route: str | None) -> tuple[Transform, ...]:
            return self.transforms if route is None or self.routing is None else self.routing.chains[route]

        def kind(p: Tensor) -> tuple[Any, ...]:
            route = routes.get(id(p))
            keyed = [t for t in chain(route) if type(t).bucket_key is not Transform.bucket_key]
            return (route, *(t.bucket_key(p, names.get(id(p))) for t in keyed))

        out = []
        for members in _bucket(params, per_tensor=per_tensor, kind=kind):
            route = routes.get(id(members[0]))
            out.append(
                Bucket(
                    chain(route),
                    group,
                    members,
                    [self.state[p] for p in members],
                    [names.get(id(p)) for p in members],
                    route,
                    kernel=None if self.routing is not None else type(self).__dict__.get("torch_kernel"),
                )
            )
        return out

    @property
    def _routing_key(self) -> str | None:
        return self.routing.group_key if self.routing is not None else None

    def _step_plans(self, group: dict[str, Any], params: list[Tensor]) -> list[tuple[Bucket, BucketPlan]]:
        """This step's buckets and plans: the group's kept plan while its facts hold, else a new
        plan (kept for the next steps unless ``fused=None`` is still counting towards compiling)."""
        kept = self._kept_plans.get(id(group))
        if kept is not None and kept.current(group, params, self._routing_key, self._steps_called):
            plans = kept.buckets(self.state)
            if plans is not None:
                return plans
        self._kept_plans.pop(id(group), None)
        plans = self._plans(group, params)
        waiting = self._break_even.get(id(group))
        if waiting is not None and not waiting.decided and group.get("fused") is None:
            return plans
        if kernel_refused_for_state(plans):
            return plans  # the kernel may take the group again once its state is contiguous
        if params:
            facts = Facts.observe(group, params, self._routing_key)
            self._kept_plans[id(group)] = GroupPlan(group, facts, plans, self._steps_called)
        return plans

    def _plans(
        self, group: dict[str, Any], params: list[Tensor], ahead: bool = False
    ) -> list[tuple[Bucket, BucketPlan]]:
        """Each bucket of a group with its plan (:mod:`optarena.optim.planning`); ``ahead``: for
        parameters that may not have gradients yet."""
        kernel = None if self.routing is not None else type(self).__dict__.get("torch_kernel")
        waiting = None
        if kernel is not None and kernel.unsuitable(params, group) is None and group.get("fused") is not False:
            compile_it, why = False, "torch's fused kernel"  # nothing to compile: no toolchain check, no warning
        else:
            compile_it, why = compile_group(group, params)
            matrix_only = all(has_matrix_transform(chain) for chain in self._chains())
            if compile_it and group.get("fused") is None and not matrix_only and not self._compiled_already():
                waiting = self._break_even.setdefault(id(group), BreakEven())
                if not waiting.decided:
                    compile_it, why = False, waiting.reason()
        per_tensor = group.get("foreach") is False and not compile_it
        plans = []
        for bucket in self._buckets(group, params, per_tensor):
            plan = kernel_plan(bucket)
            plans.append(
                (bucket, plan if plan is not None else plan_bucket(bucket, compile_it, why, assume_grads=ahead))
            )
        return plans

    def record_signals(self, every: int = 1) -> None:
        """Record each transform's signals every ``every`` steps (0: never, the default).

        Signals are named per-tensor quantities that explain a step, each reported by the
        transform that computes it anyway: LAMB's and LARS's ``trust_ratio``, RAdam's
        ``rectification``, AdaBound's ``lower_bound`` and ``upper_bound``, Adafactor's
        ``relative_step``, ``step_size``, ``update_rms`` (before clipping) and ``clip_scale``,
        Lookahead's ``lookahead_distance`` (at synchronisations), Muon's ``update_rms`` (of each
        orthogonalised update). After a recording step they
        are in :attr:`signals`. Off, they cost nothing; on, the compiled path traces a variant
        of its graph that returns them as extra outputs.
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"record_signals: every must be an integer >= 0 (0 turns recording off), got {every!r}")
        self._signal_every = every

    def _recording(self) -> bool:
        every = getattr(self, "_signal_every", 0)  # optimizers pickled before signals existed
        return bool(every) and self._steps_called % every == 0

    def _compiled_already(self) -> bool:
        """Whether this process has compiled (or loaded) this optimizer's chains: then compiling
        costs nothing more, and ``fused=None`` compiles at once."""
        mine = {structure(chain) for chain in self._chains()}
        return any(key[0] in mine for key in compiled._compiled)

    def _chains(self) -> list[tuple[Transform, ...]]:
        return list(self.routing.chains.values()) if self.routing is not None else [self.transforms]

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        started = time.perf_counter()
        waiting = self._update_buckets(group, params)
        if waiting is not None:  # fused=None waits for compiling to pay: count this eager step
            if params[0].device.type == "cuda":  # the eager step's kernels, not only their launch
                torch.cuda.synchronize(params[0].device)
            waiting.charge(time.perf_counter() - started)

    def _update_buckets(self, group: dict[str, Any], params: list[Tensor]) -> BreakEven | None:
        """Step every bucket of ``group``; the group's break-even count when ``fused=None`` is
        still waiting to compile (this step ran eagerly for it)."""
        recording = self._recording()
        index = next(i for i, g in enumerate(self.param_groups) if g is group)
        plans = self._step_plans(group, params)
        passes = self._prepare_group(group, plans)
        positions: dict[int, int] = {}  # of the group's parameters, for unnamed ones' labels
        for bucket, plan in plans:
            bucket.recording = recording
            if id(bucket) in passes:  # tensors a group pass stepped whole are done
                plan = passes[id(bucket)].remaining(plan)
            signals = step_bucket(bucket, plan, self._fused_plans)
            if signals:
                if not positions and not all(bucket.names):
                    positions = {id(p): i for i, p in enumerate(group["params"])}
                labels = [
                    label or position_label(index, positions[id(p)]) for p, label in zip(bucket.params, bucket.names)
                ]
                for name, values in signals.items():
                    self.signals.setdefault(name, {}).update(zip(labels, values))
            if not bucket.states[0]:  # a chain that kept nothing (SGD without momentum) leaves no entry, as torch
                for p, state in zip(bucket.params, bucket.states):
                    if not state:
                        del self.state[p]
        waiting = self._break_even.get(id(group))
        return waiting if waiting is not None and not waiting.decided and group.get("fused") is None else None

    def explain(self) -> list[dict[str, Any]]:
        """How the next step would run each bucket, and why: one row per bucket with the group,
        the route, the number of tensors and elements, dtype, device, the backend (eager,
        compiled, or both) and the reason. Parameters without a gradient count as if they had
        a dense one."""
        rows = []
        for index, group in enumerate(self.param_groups):
            params = list(group["params"])
            for bucket, plan in self._plans(group, params, ahead=True):
                rows.append(
                    {
                        "group": index,
                        "route": bucket.route,
                        "tensors": len(bucket.params),
                        "elements": sum(p.numel() for p in bucket.params),
                        "dtype": str(bucket.params[0].dtype).removeprefix("torch."),
                        "device": str(bucket.params[0].device),
                        "backend": plan.backend,
                        "graphs": len(plan.compiled),
                        "reason": plan.reason,
                    }
                )
        return rows

    def _prepare_group(self, group: dict[str, Any], plans: list[tuple[Bucket, BucketPlan]]) -> dict[int, CompiledSums]:
        """Run the transforms' group-wide preparation (:meth:`Transform.prepare_group`), if any,
        each over the buckets its chain steps; a bucket the plan compiles offers the compiled
        per-tensor pass (:mod:`optarena.optim.group_pass`). Returns those passes by bucket
        (``id``): a pass that is the whole step of some tensors says which."""
        hooks = [t for t in self.transforms if type(t).prepare_group is not Transform.prepare_group]
        passes: dict[int, CompiledSums] = {}
        for transform in hooks:
            contexts = []
            for bucket, plan in plans:
                if not any(t is transform for t in bucket.transforms):
                    continue
                ctx = StepContext(
                    group,
                    bucket.params,
                    bucket.states,
                    [],
                    state_dtype_for(group, bucket.params[0].dtype),
                    names=bucket.names,
                )
                if plan.compiled and plan.kernel is None:
                    ctx.compiled_sums = passes.setdefault(id(bucket), CompiledSums(bucket, plan, self._fused_plans))
                contexts.append(ctx)
            transform.prepare_group(group, contexts)
        return passes


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

    Subclasses define ``chain()`` (the transforms, or a ``partition`` of several chains),
    ``paper`` and a torch-style ``__init__`` that passes its arguments by name as the defaults;
    ``search_space`` declares the hyperparameters a tuner may vary. Each module also lists its
    registered names in ``SPECS`` (:mod:`optarena.spec`).
    """

    paper: ClassVar[Paper | None] = None
    torch_kernel: ClassVar[Any] = None
    """torch's fused kernel for exactly this chain's algorithm (:mod:`optarena.optim.torch_kernels`),
    declared by the class itself: a subclass with another chain does not inherit it."""
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
        lines.append("Composition: " + describe_chain(cls.chain()))
        if cls.paper is not None:
            lines.append(f"Paper: {cls.paper.cite()}, {cls.paper.url}")
        return "\n".join(lines)

    @classmethod
    def chain(cls) -> list[Transform] | Partition:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """The docstring's first line."""
        return (cls.__doc__ or "").strip().splitlines()[0]

    def __init__(self, params: Any, **defaults: Any):
        super().__init__(params, self.chain(), defaults)

"""The transform interface: ``prepare`` (eager bookkeeping) and ``apply`` (the math).

A transform turns a list of update tensors (initially the gradients) into a new list, over
all the parameters of one bucket (same device and dtype) at once. Its work is split in two:

- :meth:`Transform.prepare` runs eagerly in Python before the math: it creates missing
  state, reads hyperparameters from the param group (so schedulers and per-group settings
  apply) and computes this step's numbers (bias corrections and the like). It returns a
  :class:`Prepared`: *scalars* (floats, or one float per tensor) and *static* facts
  (booleans and other structural choices, such as ``amsgrad``).
- :meth:`Transform.apply` is the math, written once against
  :class:`optarena.transforms.ops.ListOps`. The eager backend runs it with multi-tensor
  ``torch._foreach_*`` operations; the fused backend traces it with ``torch.compile``, where
  scalars arrive as tensors, so a new learning rate or step count never recompiles.

Ownership is a property of the list itself: every out-of-place operation returns a
:class:`~optarena.transforms.ops.Fresh` list, which the chain owns and a transform may change
in place; any other list (the gradients, state tensors, the parameters) is copied first
(:meth:`Kernel.writable`, :func:`~optarena.transforms.ops.owned`). The gradients come out of a
step unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from optarena.hyperparameters import Hyper
from optarena.transforms.ops import ListOps, owned
from optarena.transforms.sharding import local


def real_view(tensor: Tensor) -> Tensor:
    """A complex tensor as a real tensor with a trailing dimension of 2; others unchanged."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


def itself(tensor: Tensor) -> Tensor:
    """The tensor as it is (the view of a tensor that is real and of this process)."""
    return tensor


def local_view(tensor: Tensor) -> Tensor:
    """This rank's part of ``tensor`` (the tensor itself unless it is a ``DTensor``), as a real view."""
    return real_view(local(tensor))


class StepContext:
    """One bucket of parameters during one step: group, parameters, states, step counts.

    The math sees each tensor's local part (:func:`local_view`), or with ``whole`` the
    ``DTensor`` objects themselves, for a chain whose reductions span the ranks
    (:class:`optarena.transforms.sharding.ShardedOps`).
    """

    __slots__ = (
        "group",
        "params",
        "states",
        "steps",
        "state_dtype",
        "originals",
        "view",
        "names",
        "created",
        "plain",
        "compiled_sums",
        "_step_values",
    )

    def __init__(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        states: list[dict[str, Any]],
        steps: list[Tensor],
        state_dtype: torch.dtype | None = None,
        whole: bool = False,
        names: list[str | None] | None = None,
        plain: bool = False,
    ):
        self.group = group
        self.names = list(names) if names else [None] * len(params)
        """The parameters' names (``named_parameters()``), None where they have none."""
        self.created: dict[str, set[int]] = {}
        """The state keys made at this step, and at which positions."""
        self.state_dtype = state_dtype
        """The dtype of new floating-point state when it differs from the parameters' (half precision)."""
        self.originals = params
        """The parameters as given (complex ones complex, sharded ones ``DTensor``); ``params`` holds
        what the math sees."""
        self.plain = plain
        """Every tensor is real and of this process (:attr:`optarena.optim.planning.Bucket.plain`):
        the math sees the tensors themselves."""
        self.view = itself if plain else real_view if whole else local_view
        """How a parameter, gradient or state tensor appears to the math."""
        self.params = list(params) if plain else [self.view(p) for p in params]
        self.states = states
        self.steps = steps
        self.compiled_sums: CompiledSums | None = None
        """Runs a :class:`GroupPass` compiled over the tensors the fused path takes (set by the
        optimizer before :meth:`Transform.prepare_group` when the bucket compiles); None: none."""
        self._step_values: list[float] | None = None

    def subset(self, indices: list[int]) -> StepContext:
        """The context of the tensors at ``indices`` (after preparation: no step counts)."""
        return StepContext(
            self.group,
            [self.originals[i] for i in indices],
            [self.states[i] for i in indices],
            [],
            self.state_dtype,
            whole=self.view is real_view,
            names=[self.names[i] for i in indices],
            plain=self.plain,
        )

    @property
    def step_values(self) -> list[float]:
        """The step count of each parameter after this step's increment, as floats."""
        if self._step_values is None:
            self._step_values = scalars(self.steps)
        return self._step_values

    def missing(self, key: str) -> list[int]:
        """Positions of the parameters whose state lacks ``key``."""
        return [i for i, s in enumerate(self.states) if key not in s]

    def init_state(self, key: str, make: Callable[[Tensor], Tensor]) -> None:
        """Create ``state[key] = make(param)`` where it is missing (original, maybe complex, param).

        Under half precision, floating-point state that is not a scalar is kept in
        ``state_dtype`` (float32 by default) rather than the parameter's dtype.
        """
        for position, (param, state) in enumerate(zip(self.originals, self.states)):
            if key not in state:
                value = make(param)
                if (
                    self.state_dtype is not None
                    and value.is_floating_point()
                    and value.dim() > 0
                    and value.dtype != self.state_dtype
                ):
                    value = value.to(self.state_dtype)
                state[key] = value
                self.created.setdefault(key, set()).add(position)

    def state(self, key: str) -> list[Tensor]:
        """The state tensors stored under ``key``, as the math sees them (:attr:`view`)."""
        return [self.view(s[key]) for s in self.states]

    def per_tensor(self, values: list[float]) -> float | list[float]:
        """One float per tensor, or a single float when they are all equal (faster eagerly)."""
        return values[0] if values and all(v == values[0] for v in values) else values


@dataclass(frozen=True)
class GroupPass:
    """The per-tensor part of a group-wide preparation (:meth:`Transform.prepare_group`) in the
    form the fused path compiles: one pass over each tensor that updates its state in place and
    returns its partial sums.

    ``math(param, grad, states, scalars, static)`` sees one tensor: its parameter and gradient
    as stored, its state tensors under ``state_keys`` (in that order; it writes them in place),
    this step's numbers by name (0-d tensors) and the static facts; it returns the tensor's sums
    as 0-d tensors of one dtype. It is traced, so it must use plain tensor operations.

    With ``covers``, ``math`` is the whole step of the tensors it takes (it writes the parameter
    too): the fused path runs it only over buckets whose chain ``covers(chain)`` accepts, and
    those tensors' own step is then skipped for this step. ``norms`` names states whose L1 norm
    after the pass completes each tensor's sums (after those ``math`` returns): a sum over a
    state the loop writes, which the compiled loop cannot reduce without a second pass of its own.
    """

    math: Callable[[Tensor, Tensor, list[Tensor], Mapping[str, Any], Mapping[str, Hashable]], list[Tensor]]
    state_keys: tuple[str, ...]
    scalars: dict[str, float]
    static: dict[str, Hashable] = field(default_factory=dict)
    covers: Callable[[Sequence[Transform]], bool] | None = None
    norms: tuple[str, ...] = ()


CompiledSums = Callable[["Transform", GroupPass], dict[int, Tensor]]
"""Runs a transform's :class:`GroupPass` compiled over the tensors of a context that the fused
path takes: their positions, each with a 1-d tensor of its sums. Positions left out (tensors
that step eagerly, or a compilation that failed) are for the transform's eager code."""


@dataclass
class Prepared:
    """What :meth:`Transform.prepare` hands to :meth:`Transform.apply` for one step."""

    scalars: dict[str, float | list[float]] = field(default_factory=dict)
    """Numbers: one float for every tensor, or a list with one float per tensor."""
    static: dict[str, Hashable] = field(default_factory=dict)
    """Structural facts (flags, choices); the fused path compiles once per combination."""
    signals: dict[str, float | list[float]] = field(default_factory=dict)
    """Named quantities known before the math (a rectification term, a bound), one float for
    every tensor or one per tensor; reported only while the optimizer records signals."""


class Kernel:
    """What :meth:`Transform.apply` sees: the tensors of one bucket and the prepared values.

    ``params`` and ``state(key)`` are real views (complex parameters appear as real tensors
    with a trailing dimension of 2). ``scalar(name)`` is a float or a per-tensor list on the
    eager path, and a list of 0-d tensors on the fused path; both work as ``ListOps``
    scalars. ``static(name)`` is the plain Python value.
    """

    def __init__(
        self,
        params: list[Tensor],
        states: Mapping[str, list[Tensor]],
        prepared: list[Prepared],
        recording: bool = False,
        entries: list[dict[str, Any]] | None = None,
    ):
        self.params = params
        self.entries: list[dict[str, Any]] = entries if entries is not None else []
        """The per-parameter state dicts (eager path), for matrix transforms, whose state is per
        matrix and made where the matrix is worked on (:mod:`optarena.transforms.matrix`)."""
        self.grads: list[Tensor] = []
        """The gradients the chain started from (set by ``run_chain``); read them, never write."""
        self._states = states
        self._prepared = prepared
        self.current = 0
        self.signals: dict[str, list[Tensor]] | None = {} if recording else None
        """Per-tensor quantities reported during this step (None: not recording, the default)."""

    @property
    def recording(self) -> bool:
        """Whether this step records signals (a fact of the step: the compiled path traces it)."""
        return self.signals is not None

    def report(self, name: str, values: list[Tensor]) -> None:
        """Record one 0-d tensor per tensor of the bucket under ``name`` (nothing when not recording).

        Costs nothing when off; on the compiled path the values leave the graph as outputs, so
        quantities the math computes anyway (a trust ratio) come at no extra pass.
        """
        if self.signals is not None:
            self.signals[name] = list(values)

    def state(self, key: str) -> list[Tensor]:
        return self._states[key]

    def scalar(self, name: str) -> Any:
        return self._prepared[self.current].scalars[name]

    def static(self, name: str) -> Any:
        # a flag, a count, a name or a tuple of them, as the transform declared it
        return self._prepared[self.current].static[name]

    def writable(self, ops: ListOps, updates: list[Tensor]) -> list[Tensor]:
        """The updates, copied first unless the chain owns them (:class:`~optarena.transforms.ops.Fresh`)."""
        return updates if owned(updates) else ops.clone(updates)


def scalars(tensors: list[Tensor]) -> list[float]:
    """Python floats of one-element tensors, read in one transfer rather than one per tensor."""
    return torch.stack(tensors).tolist() if tensors else []


def scalar_dtype() -> torch.dtype:
    """The dtype of scalar state such as ``step``: float64 under a float64 default, else float32.

    The same rule as torch.optim, so state dicts move between the two unchanged.
    """
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def zeros(param: Tensor) -> Tensor:
    """A state tensor of zeros shaped like the parameter."""
    return torch.zeros_like(param, memory_format=torch.preserve_format)


def filled_like(param: Tensor, value: float) -> Tensor:
    """A state tensor like ``param`` whose every real coordinate is ``value``.

    For a complex parameter both the real and the imaginary part start at ``value``
    (torch.optim.Adagrad starts the imaginary part at 0).
    """
    out = zeros(param)
    real_view(out).fill_(value)
    return out


class Transform:
    """A small step of an optimizer's update, over lists of tensors.

    Subclasses set ``hyperparameters`` (the hyperparameters they read, by their own names),
    ``state_keys`` (names they keep in the per-parameter state), ``uses_step`` (whether they
    need the step count), ``elementwise`` (whether the update of each element depends only
    on that element, which makes complex parameters work through their real view) and
    ``needs_shape`` (whether the math uses the tensors' shapes, such as per-row means;
    whole-tensor norms do not). The fused path flattens every tensor when no transform of
    the chain needs shapes.

    Each hyperparameter is either bound to a param-group key (its own name unless
    :meth:`bind` renames it), read at every step, so schedulers and per-group settings
    apply; or fixed at construction (``ScaleByRadam(sma_threshold=4.0)``), a constant that
    the param groups do not hold. A chain refuses two transforms that read one group key
    with different meanings (:func:`bound_hyperparameters`).
    """

    hyperparameters: ClassVar[Mapping[str, Hyper]] = {}
    group_keys: ClassVar[tuple[str, ...]] = ()
    """Other param-group keys it reads, which the optimizer sets (not user settings)."""
    state_keys: ClassVar[tuple[str, ...]] = ()
    uses_step: ClassVar[bool] = False
    scalar_state_keys: ClassVar[tuple[str, ...]] = ()
    """State kept as a scalar of its own dtype (like ``step``), not cast to the parameter's."""
    elementwise: ClassVar[bool] = True
    needs_shape: ClassVar[bool | None] = None
    """None: as ``not elementwise``."""
    reduces_update: ClassVar[bool] = False
    """Takes a whole-tensor reduction of the incoming update (a norm, a count) before it uses the
    update itself, so the update is needed in a second pass over memory, after the reduction,
    and recomputing it there moves no more bytes than storing it. The fused path then computes
    it again in that pass from the tensors it came from, rather than storing it in a temporary
    tensor as large as the parameter (:data:`optarena.optim.compiled.RECOMPUTE_OPTIONS`)."""

    scales_by_learning_rate: ClassVar[bool] = False
    """Multiplies the update by ``-lr`` (its scalar ``neg_lr``): at the end of a chain the
    optimizer folds it into the parameter update."""

    def __init__(self, **fixed: Any):
        self._keys: dict[str, str] = {}
        self._fixed: dict[str, Any] = {}
        if fixed:
            self._fix(fixed)

    @classmethod
    def uses_shapes(cls) -> bool:
        return (not cls.elementwise) if cls.needs_shape is None else cls.needs_shape

    def uses_shapes_on(self, params: Sequence[Tensor]) -> bool:
        """Whether the math uses the shapes of these tensors (one bucket): :meth:`uses_shapes`,
        unless a transform's shaped work applies to some tensors only (Adafactor's factored
        moments, to matrices): a bucket of the others then steps flattened, in larger chunks."""
        return self.uses_shapes()

    # -- binding hyperparameters ------------------------------------------------------------

    def _bindings(self) -> tuple[dict[str, str], dict[str, Any]]:
        # subclasses with their own __init__ may not call Transform.__init__
        return self.__dict__.setdefault("_keys", {}), self.__dict__.setdefault("_fixed", {})

    def _declared(self, name: str) -> Hyper:
        try:
            return self.hyperparameters[name]
        except KeyError:
            valid = ", ".join(self.hyperparameters) or "none"
            raise TypeError(
                f"{type(self).__name__} has no hyperparameter {name!r}; its hyperparameters: {valid}"
            ) from None

    def _fix(self, values: Mapping[str, Any]) -> None:
        keys, fixed = self._bindings()
        for name, value in values.items():
            self._declared(name).constraint.check(name, value)
            fixed[name] = value
            keys.pop(name, None)

    def bind(self, **keys: str) -> Transform:
        """A copy reading hyperparameter ``name`` from group key ``keys[name]``: two transforms
        that both read ``eps`` with different meanings keep their values apart this way,
        e.g. ``ScaleByLars().bind(eps="lars_eps")``."""
        out = copy.copy(self)
        bound, fixed = (dict(d) for d in self._bindings())
        out._keys, out._fixed = bound, fixed
        for name, key in keys.items():
            self._declared(name)
            if not isinstance(key, str) or not key.isidentifier():
                raise TypeError(
                    f"{type(self).__name__}.bind: the group key for {name!r} must be an identifier, got {key!r}"
                )
            if name in fixed:
                raise TypeError(
                    f"{type(self).__name__}.bind: {name!r} is fixed at construction, not read from the group"
                )
            bound[name] = key
        return out

    def key(self, name: str) -> str:
        """The param-group key hyperparameter ``name`` is read from."""
        return self._bindings()[0].get(name, name)

    def bound_hyperparameters(self) -> dict[str, Hyper]:
        """The param-group keys this transform reads, with their declarations (fixed ones left out)."""
        fixed = self._bindings()[1]
        return {self.key(name): hyper for name, hyper in self.hyperparameters.items() if name not in fixed}

    def prepare(self, ctx: StepContext) -> Prepared:
        """Create missing state and compute this step's scalars and static facts (eager).

        ``ctx.originals`` are the parameters as given, with their global shapes (``DTensor``
        objects for sharded ones); base shape-dependent numbers on them.
        """
        return Prepared()

    def apply(self, ops: Any, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        """The math: the next list of updates, written with ``ops`` (a ``ListOps``)."""
        raise NotImplementedError

    def prepare_group(self, group: dict[str, Any], contexts: list[StepContext]) -> None:
        """Once per param group and step, before any bucket's :meth:`prepare` (eager; optional).

        For the quantities that span the whole group rather than one bucket: Schedule-Free's
        step counter and averaging weights, or the learning-rate estimate of Prodigy and
        D-Adaptation, a sum over every parameter of the group. ``contexts`` holds one
        :class:`StepContext` per bucket (every parameter of the group that has a gradient),
        without step counts; results go into the group (``group_keys``) or the state, where
        ``prepare`` reads them. Skipped steps (``nonfinite="skip"``) do not call it. A context
        whose bucket compiles offers :attr:`StepContext.compiled_sums`, which runs a
        :class:`GroupPass` compiled over the tensors the fused path takes.
        """

    def bucket_key(self, param: Tensor, name: str | None = None) -> Hashable:
        """Parameters with different keys never share a bucket (default: one key for all).

        For transforms whose state differs in kind between tensors, such as Adafactor's
        factored and unfactored second moments, or that apply to some tensors only
        (:func:`optarena.masked`); ``name`` is the parameter's name, where it has one.
        """
        return None

    def source_modules(self) -> tuple[str, ...]:
        """The modules whose code the compiled step traces for this transform (the compile cache
        hashes them, so an edit never loads a stale graph)."""
        return (type(self).__module__,)

    def value(self, ctx: StepContext, name: str) -> Any:
        """Hyperparameter ``name``: its fixed value, or the value of its group key (the declared
        default where the group lacks it); one-element tensors as floats."""
        keys, fixed = self._bindings()
        if name in fixed:
            value = fixed[name]
        else:
            key = keys.get(name, name)
            value = ctx.group[key] if key in ctx.group else self.hyperparameters[name].default
        return float(value) if isinstance(value, Tensor) and value.numel() == 1 else value

    @property
    def name(self) -> str:
        """The snake_case name used in docs and compositions."""
        out = []
        for i, ch in enumerate(type(self).__name__):
            if ch.isupper() and i:
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    def settings(self) -> list[str]:
        """Construction-time settings as text (fixed values, renamed keys); subclasses add theirs."""
        keys, fixed = self._bindings()
        shown = [f"{name}={value!r}" for name, value in fixed.items()]
        shown += [f"{name}<-{key}" for name, key in keys.items() if key != name]
        return shown

    def describe(self) -> str:
        """The name with any construction-time settings, as shown in a composition."""
        shown = self.settings()
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    def __repr__(self) -> str:
        return self.describe()


def bias_corrections(beta: float, steps: list[float]) -> list[float]:
    """``1 - beta**t`` for each step count."""
    return [1.0 - beta**t for t in steps]

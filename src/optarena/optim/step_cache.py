"""Each param group's step plan, kept from step to step while nothing it depends on changes.

Planning a step (buckets by device, dtype, mesh and route; compiled, eager or torch's kernel;
the kernel's suitability; the placement and gradient checks) reads facts that rarely change:
which parameters have a gradient, the dtypes, devices and contiguity of parameters and
gradients, the group's ``fused``, ``foreach`` and ``differentiable`` (and its routing key),
and the process's compile switch and planning settings. A :class:`GroupPlan` keeps the plan
with those facts; a step whose facts are equal reuses it, for the price of a few passes over
the parameter list (identities, dtypes, devices, contiguity).

Nothing else is kept. Hyperparameters (``lr``, ``betas``, ...) are read from the group at
every step, so a scheduler's writes, tensors included, cost nothing here. State is gathered
afresh at every step: cleared, replaced or reloaded state is seen at once, missing state is
made by the chain's preparation, and a state tensor not seen before is checked for the
kernel (contiguity) before it is used.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter, is_
from typing import Any

from torch import Tensor

from optarena.optim import planning, toolchain
from optarena.optim.planning import Bucket, BucketPlan
from optarena.optim.torch_kernels import KernelArgs, all_contiguous
from optarena.transforms.base import Transform, local_view
from optarena.transforms.sharding import is_sharded

PLAN_KEYS = ("fused", "foreach", "differentiable")
"""The group keys a plan depends on (with the routing key, when a partition routes by one)."""

_grad = attrgetter("grad")
_dtype = attrgetter("dtype")
_device = attrgetter("device")
_layout = attrgetter("layout")


def switches() -> tuple[Hashable, ...]:
    """The process-wide settings planning reads: the compile switch and planning's thresholds."""
    return (
        toolchain.switched_off(),
        planning.AUTO_MIN_ELEMENTS,
        planning.AUTO_COMPILE_DEVICES,
        planning.MINOR_RANK_SHARE,
    )


@dataclass(frozen=True, eq=False)
class Facts:
    """What a group's plan depends on, as observed at one step."""

    params: tuple[Tensor, ...]
    settings: tuple[Any, ...]
    switches: tuple[Hashable, ...]
    dtypes: list[Any]
    grad_dtypes: list[Any]
    devices: list[Any]
    layouts: Any
    """True when every parameter and gradient is dense and contiguous (the usual case, checked in
    one pass each); otherwise each parameter's contiguity and its gradient's layout and contiguity."""

    @staticmethod
    def observe(group: Mapping[str, Any], params: list[Tensor], routing_key: str | None) -> Facts:
        """The facts of this step."""
        grads = list(map(_grad, params))
        return Facts(
            tuple(params),
            settings(group, routing_key),
            switches(),
            list(map(_dtype, params)),
            list(map(_dtype, grads)),
            list(map(_device, params)),
            layouts(params, grads),
        )

    def same_params(self, params: list[Tensor]) -> bool:
        """Whether ``params`` are the parameters these facts were observed on (by identity)."""
        return len(params) == len(self.params) and all(map(is_, params, self.params))

    def matches(self, other: Facts) -> bool:
        """Whether ``other`` (a later step's facts) allows the plan made for these."""
        return (
            self.same_params(list(other.params))
            and self.settings == other.settings
            and self.switches == other.switches
            and self.dtypes == other.dtypes
            and self.grad_dtypes == other.grad_dtypes
            and self.devices == other.devices
            and self.layouts == other.layouts
        )


def layouts(params: list[Tensor], grads: list[Tensor]) -> Any:
    """:attr:`Facts.layouts` (``is_contiguous`` is False for a sparse gradient)."""
    if all(map(Tensor.is_contiguous, grads)) and all(map(Tensor.is_contiguous, params)):
        return True
    return (
        tuple(map(Tensor.is_contiguous, params)),
        tuple(map(_layout, grads)),
        tuple(map(Tensor.is_contiguous, grads)),
    )


def settings(group: Mapping[str, Any], routing_key: str | None) -> tuple[Any, ...]:
    values = tuple(group.get(key) for key in PLAN_KEYS)
    return values if routing_key is None else (*values, group.get(routing_key))


_STALE = object()
"""A kernel bucket's state holds a tensor the kernel cannot take: the group is planned afresh."""


@dataclass
class Template:
    """One bucket of a kept plan: everything but this step's state, and its plan."""

    transforms: tuple[Transform, ...]
    params: list[Tensor]
    names: list[str | None]
    route: str | None
    kernel: Any
    plan: BucketPlan
    plain: bool
    seen: list[Tensor] = field(default_factory=list)
    """Kernel buckets: the state tensors last found contiguous, in the order gathered."""

    def kernel_args(self, group: dict[str, Any], states: list[dict[str, Any]], uses_step: bool) -> Any:
        """This step's arguments to torch's kernel from the existing state (steps not yet
        advanced); None when some state is still to be made, :data:`_STALE` when a state
        tensor is not contiguous."""
        kernel = self.plan.kernel
        assert kernel is not None
        keys = kernel.state_keys(group)
        try:
            lists = {key: [s[key] for s in states] for key in keys}
            steps = [s["step"] for s in states] if uses_step else []
        except KeyError:
            return None
        gathered = [t for key in keys for t in lists[key]]
        if len(gathered) != len(self.seen) or not all(map(is_, gathered, self.seen)):
            if not all_contiguous(gathered):
                return _STALE
            self.seen = gathered
        grads = list(map(_grad, self.params))
        if self.plain:
            return KernelArgs(group, self.params, grads, lists, steps)
        views = {key: [local_view(t) for t in tensors] for key, tensors in lists.items()}
        return KernelArgs(group, [local_view(p) for p in self.params], [local_view(g) for g in grads], views, steps)


class GroupPlan:
    """A group's buckets and their plans, with the :class:`Facts` they were made for."""

    def __init__(self, group: dict[str, Any], facts: Facts, plans: list[tuple[Bucket, BucketPlan]], step: int):
        self.group = group
        """The group itself (kept so that its ``id`` is not reused while the plan is)."""
        self.facts = facts
        self.checked_at = step
        """The step at which the facts were last found equal."""
        self.templates = [
            Template(
                bucket.transforms,
                bucket.params,
                bucket.names,
                bucket.route,
                bucket.kernel,
                plan,
                not any(is_sharded(p) or p.is_complex() for p in bucket.params),
            )
            for bucket, plan in plans
        ]

    def current(self, group: dict[str, Any], params: list[Tensor], routing_key: str | None, step: int) -> bool:
        """Whether the plan holds for ``params`` of ``group`` at ``step`` (checked once a step)."""
        if group is not self.group or not self.facts.same_params(params):
            return False
        if self.checked_at == step:
            return True
        facts = Facts.observe(group, params, routing_key)
        if not facts.matches(self.facts):
            return False
        self.checked_at = step
        return True

    def buckets(self, state: Mapping[Tensor, dict[str, Any]]) -> list[tuple[Bucket, BucketPlan]] | None:
        """This step's buckets with their state; None when the plan no longer holds (a kernel
        bucket's state tensor is not contiguous). No parameter or state value is changed."""
        out = []
        for t in self.templates:
            states = [state[p] for p in t.params]
            bucket = Bucket(
                t.transforms, self.group, t.params, states, t.names, t.route, kernel=t.kernel, plain=t.plain
            )
            if t.plan.kernel is not None:
                gathered = t.kernel_args(self.group, states, bucket.uses_step)
                if gathered is _STALE:
                    return None
                bucket.gathered = gathered
            out.append((bucket, t.plan))
        return out


def kernel_refused_for_state(plans: list[tuple[Bucket, BucketPlan]]) -> bool:
    """Whether torch's kernel was refused a bucket for its state alone (a state tensor that is
    not contiguous): such a plan is not kept, since it depends on more than its facts."""
    for bucket, plan in plans:
        kernel, group = bucket.kernel, bucket.group
        if kernel is None or plan.kernel is not None:
            continue
        if group.get("fused") is False or group.get("foreach") is True:
            continue
        if kernel.unsuitable(bucket.params, group) is None:
            return True
    return False

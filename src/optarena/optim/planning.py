"""How each bucket of a step runs: the one place that decides eager or compiled, and says why.

A param group's parameters are split into buckets (:class:`Bucket`: one device, dtype, mesh,
route and state kind each). :func:`compile_group` decides whether a group asks for the compiled
path at all (``fused``, its size, the toolchain); :func:`plan_bucket` then decides, for one
bucket, which tensors run in which compiled graph and which step eagerly, and records the
reason in the :class:`BucketPlan` the step carries out (:mod:`optarena.optim.fused`).
``ChainOptimizer.explain()`` shows these plans to a user who asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from optarena.optim import toolchain
from optarena.optim.chunks import fusable
from optarena.optim.torch_kernels import KernelArgs, TorchKernel
from optarena.transforms import sharding
from optarena.transforms.base import Transform, local_view
from optarena.transforms.matrix import compiles_kernels, has_matrix_transform

AUTO_MIN_ELEMENTS = 1 << 20
"""With ``fused=None`` a group smaller than this never compiles."""

COMPILE_COST_S = 8.0
"""What ``fused=None`` expects a compilation to cost: the first step of a new process with an
empty cache took 5.5 to 12.5 s per optimizer in the benchmark (docs/performance.md)."""

AUTO_COMPILE_DEVICES = ("cpu",)
"""Devices on which ``fused=None`` may compile. On CUDA the compiled step was slower than the
eager multi-tensor one for every optimizer timed on an H200 (its many small compiled calls are
bound by launch overhead; docs/performance.md), so there ``fused=None`` stays eager, torch's
fused kernels aside, and ``fused=True`` still compiles."""

COMPILED_SPEEDUP = 2.0
"""What ``fused=None`` expects the compiled step to save: the eager step took about twice as
long as the compiled one across the benchmark's optimizers (docs/performance.md)."""


@dataclass
class BreakEven:
    """``fused=None``'s rule for one param group: run eagerly while the time the eager steps
    have lost against an expected compiled step (``1 - 1 / COMPILED_SPEEDUP`` of each) is below
    the expected cost of compiling, then compile. A short run never pays for a compilation it
    cannot recoup; a long one pays at most about twice the better choice (the rent-or-buy rule)."""

    lost_s: float = 0.0
    decided: bool = False

    def charge(self, eager_seconds: float) -> None:
        self.lost_s += eager_seconds * (1.0 - 1.0 / COMPILED_SPEEDUP)
        if self.lost_s >= COMPILE_COST_S:
            self.decided = True

    def reason(self) -> str:
        return (
            f"fused=None: compiling pays once the eager steps have lost its expected cost "
            f"({self.lost_s:.1f} of {COMPILE_COST_S:g} s so far)"
        )


MINOR_RANK_SHARE = 0.01
"""A chain that uses shapes compiles one graph per tensor rank. Within a bucket, a rank whose
tensors hold less than this share of the bucket's elements steps eagerly instead of costing a
graph of its own (Ranger's biases and normalisation scales, on which gradient centralisation
does nothing; docs/design.md has the measurements). Set it to 0 to compile every rank."""


@dataclass
class Bucket:
    """Parameters of one group that step together: one device, dtype, mesh, route and state kind."""

    transforms: tuple[Transform, ...]
    group: dict[str, Any]
    params: list[Tensor]
    states: list[dict[str, Any]]
    names: list[str | None] = field(default_factory=list)
    route: str | None = None
    """The label of the chain that steps it, when the optimizer routes parameters (``partition``)."""
    recording: bool = False
    """Whether this step records signals."""
    kernel: TorchKernel | None = None
    """torch's fused kernel for this chain's algorithm, if it has one (:mod:`optarena.optim.torch_kernels`)."""
    plain: bool = False
    """Every parameter is a real tensor of this process (not complex, not sharded): the math sees
    the tensors themselves, no view is needed (set by a plan kept between steps)."""
    gathered: KernelArgs | None = None
    """This step's arguments to torch's kernel, gathered from existing state by a plan kept
    between steps (:mod:`optarena.optim.step_cache`); None: the chain's preparation makes them."""

    def __post_init__(self) -> None:
        if not self.names:
            self.names = [None] * len(self.params)

    @property
    def uses_step(self) -> bool:
        return any(t.uses_step for t in self.transforms)

    @property
    def flat(self) -> bool:
        """No transform uses shapes: the compiled graph takes every tensor flattened."""
        return not any(t.uses_shapes_on(self.params) for t in self.transforms)

    def subset(self, indices: Sequence[int]) -> Bucket:
        return Bucket(
            self.transforms,
            self.group,
            [self.params[i] for i in indices],
            [self.states[i] for i in indices],
            [self.names[i] for i in indices],
            self.route,
            self.recording,
            self.kernel,
            self.plain,
        )


@dataclass(frozen=True)
class BucketPlan:
    """What one bucket's step does: compiled graphs over some tensors, the eager step for the rest."""

    mode: str
    """How sharded parameters step (:func:`optarena.transforms.sharding.step_mode`)."""
    compiled: tuple[tuple[int, ...], ...] = ()
    """Positions in the bucket, one tuple per compiled graph."""
    eager: tuple[int, ...] = ()
    """Positions that step eagerly."""
    reason: str = ""
    """Why, in words."""
    kernel: TorchKernel | None = None
    """torch's fused kernel steps the whole bucket (then ``compiled`` and ``eager`` are empty)."""

    @property
    def backend(self) -> str:
        if self.kernel is not None:
            return self.kernel.name
        if not self.compiled:
            return "eager"
        return "compiled" if not self.eager else "compiled + eager"


def compile_group(group: dict[str, Any], params: Sequence[Tensor]) -> tuple[bool, str]:
    """Whether a group's buckets may compile (``fused`` True, or None and at least
    :data:`AUTO_MIN_ELEMENTS` elements, with a toolchain), and why not when they may not.

    ``fused=True`` on tensors no fused kernel takes is refused as torch.optim refuses it; where
    the toolchain is missing the step falls back to the eager one with one warning.
    """
    choice = group.get("fused")
    if not params:
        return False, "no parameter has a gradient"
    if group.get("differentiable"):
        return False, "differentiable=True: the step is recorded for autograd, eagerly"
    if choice is False:
        return False, "fused=False"
    if choice is None:
        if group.get("foreach") is False:
            return False, "foreach=False: one tensor at a time"
        device = params[0].device.type
        if device not in AUTO_COMPILE_DEVICES:
            return False, f"fused=None on {device}: the compiled step did not pay there (fused=True compiles)"
        elements = sum(p.numel() for p in params)
        if elements < AUTO_MIN_ELEMENTS:
            return False, f"fused=None and {elements:,} elements, fewer than {AUTO_MIN_ELEMENTS:,}"
        if toolchain.switched_off():
            return False, f"{toolchain.ENV_SWITCH}=0"
    reason = toolchain.unavailable_reason(params[0].device)
    if reason is not None:
        if choice is True:
            toolchain.refuse_where_torch_refuses(params)
        toolchain.warn_once(reason)
        return False, f"the compiled step is unavailable: {reason}"
    return True, "fused=True" if choice is True else f"fused=None and at least {AUTO_MIN_ELEMENTS:,} elements"


def kernel_plan(bucket: Bucket) -> BucketPlan | None:
    """torch's fused kernel for the whole bucket, where the chain is exactly its algorithm and
    the group does not refuse fused steps (``fused=False``); None otherwise."""
    kernel, group = bucket.kernel, bucket.group
    if kernel is None or group.get("fused") is False or group.get("foreach") is True:
        return None
    if kernel.unsuitable(bucket.params, group, bucket.states) is not None:
        return None
    mode = sharding.step_mode(bucket.transforms, bucket.params)
    reason = f"torch's fused kernel ({kernel.name}): the chain is exactly its algorithm, so nothing is compiled"
    return BucketPlan(mode, reason=reason, kernel=kernel)


def plan_bucket(bucket: Bucket, compile_it: bool, why: str, assume_grads: bool = False) -> BucketPlan:
    """The plan of one bucket, given its group's decision (:func:`compile_group`); with
    ``assume_grads``, tensors without a gradient count as having a dense one (a plan made ahead)."""
    everything = tuple(range(len(bucket.params)))
    mode = sharding.step_mode(bucket.transforms, bucket.params)
    if has_matrix_transform(bucket.transforms):
        return BucketPlan(mode, eager=everything, reason=matrix_reason(bucket.group))
    if not compile_it:
        return BucketPlan(mode, eager=everything, reason=why)
    if mode != sharding.LOCAL:
        return BucketPlan(
            mode, eager=everything, reason="sharded parameters whose per-tensor quantities are completed across ranks"
        )
    flat = bucket.flat
    taken = [i for i, p in enumerate(bucket.params) if fusable(p, flat, assume_grads)]
    parts = [taken] if flat else major_ranks(bucket.params, taken)
    compiled = {i for part in parts for i in part}
    eager = tuple(i for i in everything if i not in compiled)
    notes = [why]
    if len(taken) < len(everything):
        notes.append(f"{len(everything) - len(taken)} tensors eagerly (sparse, strided, or a size of 0 or 1)")
    if len(compiled) < len(taken):
        notes.append(f"{len(taken) - len(compiled)} tensors of a minor rank eagerly")
    if not flat and len(parts) > 1:
        notes.append(f"one graph per rank ({len(parts)})")
    return BucketPlan(mode, tuple(tuple(part) for part in parts if part), eager, "; ".join(notes))


def matrix_reason(group: dict[str, Any]) -> str:
    """Why a chain with a matrix transform steps eagerly, and whether its kernels compile."""
    reason = "a matrix transform works on each matrix in turn, eagerly"
    if compiles_kernels(group):
        return reason + "; its kernels (Newton-Schulz, preconditioner products) compiled: fused=True"
    return reason + "; its kernels compile with fused=True only"


def major_ranks(params: Sequence[Tensor], indices: Sequence[int]) -> list[list[int]]:
    """``indices`` grouped by tensor rank (one graph each), leaving out the ranks that hold less
    than :data:`MINOR_RANK_SHARE` of their elements."""
    by_rank: dict[int, list[int]] = {}
    for i in indices:
        by_rank.setdefault(local_view(params[i]).dim(), []).append(i)
    least = MINOR_RANK_SHARE * sum(params[i].numel() for i in indices)
    return [part for part in by_rank.values() if sum(params[i].numel() for i in part) >= least]

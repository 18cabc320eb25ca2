"""Sharded parameters (``DTensor``, as FSDP2 and tensor parallelism make them).

How a bucket of sharded parameters steps (:func:`step_mode`):

- :data:`LOCAL`: an elementwise chain needs nothing from the other ranks. It steps each
  parameter's local part (:func:`local`) with the ordinary backends, compiled ones included.
- :data:`NORMS`: a chain whose only reductions are whole-tensor norms (trust ratios) also
  steps the local parts, eagerly, with :class:`ShardedNormOps`, whose norms complete the
  local sums of squares across ranks.
- :data:`WHOLE`: a chain that reduces over dimensions (row and column means, gradient
  centralisation) runs on the ``DTensor`` objects with :class:`ShardedOps`, so that the
  placement of every intermediate (a row statistic of a matrix split by columns, say)
  follows from ``DTensor``'s rules.

Either way a reduction adds the local partial sums of every tensor of the bucket into one
stacked vector and all-reduces it once per call over the mesh dimensions that shard those
tensors, so the numbers are those of one process holding whole tensors.

State made for a sharded parameter is a ``DTensor`` placed like it (:func:`zeros_without_dim`
for state that drops a dimension), so ``torch.distributed.checkpoint`` saves and loads it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from optarena.transforms.ops import ForeachOps, Fresh, Scalar

if TYPE_CHECKING:
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from torch.distributed.tensor.placement_types import Partial, _StridedShard
    from typing_extensions import TypeIs

DISTRIBUTED_TENSOR = "torch.distributed.tensor"
"""The module that defines ``DTensor``: imported here only once the program has imported it
(a ``DTensor`` cannot exist before), so that programs that never shard do not pay for its
import."""


def _bind_distributed() -> None:
    """Put torch.distributed's tensor types in this module's namespace, for the functions below."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from torch.distributed.tensor.placement_types import Partial, _StridedShard

    globals().update(
        dist=dist, DTensor=DTensor, Replicate=Replicate, Shard=Shard, Partial=Partial, _StridedShard=_StridedShard
    )


LOCAL = "local"
NORMS = "norms"
WHOLE = "whole"


def step_mode(transforms: Sequence[Any], bucket: Sequence[Tensor]) -> str:
    """:data:`LOCAL`, :data:`NORMS` or :data:`WHOLE`: how a bucket steps (see the module's text)."""
    if not bucket or not is_sharded(bucket[0]) or all(t.elementwise for t in transforms):
        return LOCAL
    return WHOLE if any(t.uses_shapes() for t in transforms) else NORMS


def is_sharded(tensor: Any) -> TypeIs[DTensor]:
    """Whether ``tensor`` is a ``DTensor`` (a parameter of FSDP2 or tensor parallelism)."""
    if DISTRIBUTED_TENSOR not in sys.modules:
        return False
    if "DTensor" not in globals():
        _bind_distributed()
    return isinstance(tensor, DTensor)


def local(tensor: Tensor) -> Tensor:
    """The part of ``tensor`` this rank holds (``tensor`` itself unless it is a ``DTensor``)."""
    return tensor._local_tensor if is_sharded(tensor) else tensor


def mesh_of(tensor: Tensor) -> Any:
    """The device mesh of a ``DTensor``; None for a plain tensor (the key that keeps them apart)."""
    return tensor.device_mesh if is_sharded(tensor) else None


def _sharded_dim(placement: Any) -> int | None:
    """The tensor dimension a placement splits (``Shard`` or ``_StridedShard``), else None."""
    if isinstance(placement, (Shard, _StridedShard)):
        return placement.dim
    return None


def describe(placement: Any) -> str:
    """A placement as its class and dimension, e.g. ``_StridedShard(dim=0)``; ``Partial(sum)``."""
    dim = _sharded_dim(placement)
    if dim is not None:
        return f"{type(placement).__name__}(dim={dim})"
    if isinstance(placement, Partial):
        return f"Partial({placement.reduce_op})"
    return f"{type(placement).__name__}()"


def unsupported_placement(tensor: Tensor, uses_shapes: bool) -> str | None:
    """Why a chain cannot step ``tensor``'s placements (None when it can).

    ``Partial`` parameters hold summands, not values: no optimizer can step them. A chain
    that reduces over dimensions (row and column means) needs each sharded dimension split
    in plain blocks (``Shard``); the interleaved blocks of ``_StridedShard`` (FSDP2 over tensor
    parallelism on one dimension) suit elementwise chains and whole-tensor norms only.
    """
    if not is_sharded(tensor):
        return None
    for placement in tensor.placements:
        if isinstance(placement, Partial):
            return (
                f"{describe(placement)} (a partial sum, not a value: redistribute the parameter to Shard or Replicate)"
            )
        if isinstance(placement, _StridedShard) and uses_shapes:
            return (
                f"{describe(placement)} (interleaved blocks: this chain reduces over rows or columns, which needs "
                "Shard or Replicate placements)"
            )
        if not isinstance(placement, (Shard, _StridedShard, Replicate)):
            return f"{describe(placement)} (optarena steps Shard, Replicate and _StridedShard placements)"
    return None


def _reduction_key(tensor: Tensor, dims: Sequence[int] | None) -> tuple[int, ...]:
    """The mesh dimensions over which a reduction of ``tensor`` over ``dims`` (all when None) is partial."""
    ndim = tensor.dim()
    reduced = None if dims is None else {d % ndim for d in dims} if ndim else set()
    out = []
    for mesh_dim, placement in enumerate(tensor.placements):
        dim = _sharded_dim(placement)
        if dim is not None and (reduced is None or dim in reduced):
            out.append(mesh_dim)
    return tuple(out)


def all_reduce_sums(
    values: list[Tensor], tensors: Sequence[Tensor], dims: Sequence[Sequence[int] | None]
) -> list[Tensor]:
    """Complete each tensor's local partial sums ``values[i]`` (any shape) across the mesh.

    ``values[i]`` is the local part of ``tensors[i]`` (a ``DTensor``) summed over ``dims[i]``
    (every dimension when None). Sums of tensors split along a reduced dimension are added
    across the ranks that hold the other parts, all those of one mesh and mesh dimensions in
    one flat buffer: one collective per mesh dimension involved, whatever the number of tensors.
    """
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for i, (t, d) in enumerate(zip(tensors, dims)):
        key = _reduction_key(t, d)
        if key and t.device_mesh.size() > 1:
            groups.setdefault((id(t.device_mesh), key), []).append(i)
    out = list(values)
    for (_, mesh_dims), indices in groups.items():
        mesh = tensors[indices[0]].device_mesh
        parts = [values[i] for i in indices]
        flat = torch.cat([p.reshape(-1) for p in parts])
        for mesh_dim in mesh_dims:
            if mesh.size(mesh_dim) > 1:
                dist.all_reduce(flat, group=mesh.get_group(mesh_dim))
        for i, part in zip(indices, flat.split([p.numel() for p in parts])):
            out[i] = part.view(values[i].shape)
    return out


def needs_collective(tensors: Sequence[Tensor], dims: Sequence[Sequence[int] | None]) -> bool:
    """Whether reducing ``tensors`` over ``dims`` needs the other ranks."""
    return any(_reduction_key(t, d) and t.device_mesh.size() > 1 for t, d in zip(tensors, dims))


def any_flag(flags: Tensor, tensors: Sequence[Tensor]) -> Tensor:
    """``flags`` (one per tensor, 0 or 1) made the same on every rank of the tensors' meshes:
    the largest value each has anywhere, one collective per mesh dimension of each mesh."""
    meshes = {id(t.device_mesh): t.device_mesh for t in tensors if is_sharded(t)}
    for mesh in meshes.values():
        for mesh_dim in range(mesh.ndim):
            if mesh.size(mesh_dim) > 1:
                dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=mesh.get_group(mesh_dim))
    return flags


def _placements_after(tensor: Tensor, dims: set[int], keepdim: bool) -> list[Any]:
    """The placements of ``tensor`` reduced (and completed across ranks) over ``dims``."""
    out = []
    for placement in tensor.placements:
        dim = _sharded_dim(placement)
        if dim is None:
            out.append(placement)
        elif dim in dims:
            out.append(Replicate())
        else:
            shift = 0 if keepdim else sum(1 for d in dims if d < dim)
            out.append(Shard(dim - shift))
    return out


def _wrap(value: Tensor, like: Tensor, placements: list[Any], shape: Sequence[int]) -> Tensor:
    """``value`` (this rank's part) as a ``DTensor`` of global ``shape`` on ``like``'s mesh."""
    stride = torch.empty(tuple(shape), device="meta").stride()
    return DTensor.from_local(
        value, like.device_mesh, placements, run_check=False, shape=torch.Size(shape), stride=stride
    )


def zeros_without_dim(param: Tensor, dim: int) -> Tensor:
    """Zeros shaped like ``param`` without dimension ``dim`` (a row or column statistic).

    For a ``DTensor`` the result is sharded where ``param`` is, except along ``dim``: the
    rows of a matrix split by rows stay split, its columns are whole on every rank.
    """
    dim %= param.dim()
    shape = param.shape[:dim] + param.shape[dim + 1 :]
    if not is_sharded(param):
        return param.new_zeros(shape)
    part = local(param)
    zeros = part.new_zeros(part.shape[:dim] + part.shape[dim + 1 :])
    return _wrap(zeros, param, _placements_after(param, {dim}, keepdim=False), shape)


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums of ``dtype`` accumulate in: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def _replicated_scalars(values: list[Tensor], like: Sequence[Tensor]) -> list[Tensor]:
    return [_wrap(v, t, [Replicate()] * t.device_mesh.ndim, ()) for v, t in zip(values, like)]


class ShardedNormOps(ForeachOps):
    """Multi-tensor operations on the local parts of sharded tensors whose norms are whole-tensor.

    ``params[i]`` is the ``DTensor`` behind the ``i``-th local tensor of every list: a chain
    without shape-dependent reductions derives each list elementwise from the parameters,
    gradients and state, so the ``i``-th tensor is placed like ``params[i]``.
    """

    def __init__(self, params: Sequence[Tensor]):
        self.params = list(params)
        self.collectives = 0

    def subset(self, indices: Sequence[int]) -> ShardedNormOps:
        """The operations for the tensors at ``indices`` of the bucket."""
        return ShardedNormOps([self.params[i] for i in indices])

    def _norms(self, lists: list[list[Tensor]]) -> list[list[Tensor]]:
        """The norms of several lists placed like ``params``, completed in one exchange."""
        flat = [x for xs in lists for x in xs]
        owners = self.params * len(lists)
        sums = [torch.linalg.vector_norm(x, dtype=_wide(x.dtype)).square() for x in flat]
        if needs_collective(owners, [None] * len(flat)):
            self.collectives += 1
        roots = [s.sqrt().to(x.dtype) for s, x in zip(all_reduce_sums(sums, owners, [None] * len(flat)), flat)]
        n = len(self.params)
        return [roots[i * n : (i + 1) * n] for i in range(len(lists))]

    def norm(self, xs: list[Tensor]) -> list[Tensor]:
        return self._norms([xs])[0] if xs else []

    def norm_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        return self.norm(xs)

    def norms_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        if not xs:
            return [], []
        first, second = self._norms([xs, ys])
        return first, second


class ShardedOps(ForeachOps):
    """Multi-tensor operations on ``DTensor`` lists, with the reductions done across ranks.

    Elementwise operations are ``DTensor``'s own (local work, no communication). Every
    reduction (norms, means over dimensions, gradient centralisation) sums locally, then
    completes the sums of the whole list in one collective (:func:`all_reduce_sums`);
    per-tensor results come back as replicated 0-d ``DTensor`` objects, row and column
    statistics placed as :func:`zeros_without_dim` places them.
    """

    def __init__(self) -> None:
        self.collectives = 0
        """Reductions that needed the other ranks (each one collective per mesh dimension)."""

    def _sums(self, xs: list[Tensor], dims: list[tuple[int, ...] | None], squares: bool = False) -> list[Tensor]:
        """Each tensor's sum (of squares with ``squares``) over ``dims[i]``, completed across ranks.

        Half-precision tensors are summed in float32 (as torch's own reductions accumulate) and
        the results stay float32 until the caller's last operation.
        """
        parts = [local(x) for x in xs]
        if squares:
            sums = [torch.linalg.vector_norm(p, dtype=_wide(p.dtype)).square() for p in parts]
        else:
            sums = [
                p.sum(dtype=_wide(p.dtype)) if d is None else p.sum(dim=d, keepdim=True, dtype=_wide(p.dtype))
                for p, d in zip(parts, dims)
            ]
        if needs_collective(xs, dims):
            self.collectives += 1
        return all_reduce_sums(sums, xs, dims)

    def norm(self, xs: list[Tensor]) -> list[Tensor]:
        if not xs:
            return []
        sums = self._sums(xs, [None] * len(xs), squares=True)
        roots = [s.sqrt().to(x.dtype) for s, x in zip(sums, xs)]
        return _replicated_scalars(roots, xs)

    def norm_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        return self.norm(xs)

    def norms_alongside(self, xs: list[Tensor], ys: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        if not xs:
            return [], []
        both = self.norm([*xs, *ys])
        return both[: len(xs)], both[len(xs) :]

    def _means(self, xs: list[Tensor], dims: list[tuple[int, ...]], keepdim: bool) -> list[Tensor]:
        """Each tensor's mean over ``dims[i]`` (non-negative), placed as the reduction leaves it."""
        sums = self._sums(xs, dims)
        out = []
        for x, s, d in zip(xs, sums, dims):
            shape = [1 if i in d else n for i, n in enumerate(x.shape) if keepdim or i not in d]
            value = (s / math.prod(x.shape[i] for i in d)).to(x.dtype)
            out.append(_wrap(value if keepdim else value.squeeze(d), x, _placements_after(x, set(d), keepdim), shape))
        return out

    def mean(self, xs: list[Tensor], dim: int, keepdim: bool = False) -> Fresh:
        return self._means(xs, [(dim % x.dim(),) for x in xs], keepdim)

    def _row_means(self, xs: list[Tensor], min_dim: int) -> tuple[list[int], list[Tensor]]:
        indices = [i for i, x in enumerate(xs) if x.dim() > min_dim]
        chosen = [xs[i] for i in indices]
        return indices, self._means(chosen, [tuple(range(1, x.dim())) for x in chosen], keepdim=True)

    def centralize(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        out = list(xs)
        indices, means = self._row_means(xs, min_dim)
        for i, mean in zip(indices, means):
            out[i] = xs[i] - mean
        return Fresh(out) if len(indices) == len(xs) else out

    def centralize_(self, xs: list[Tensor], min_dim: int) -> list[Tensor]:
        indices, means = self._row_means(xs, min_dim)
        for i, mean in zip(indices, means):
            xs[i].sub_(mean)
        return xs

    # In-place operations keep the placements of the tensor they change; an operand placed
    # otherwise (a replicated result of a broadcast over a dimension of size 1, say) is
    # redistributed to them first.

    @staticmethod
    def _aligned(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        return [
            y.redistribute(x.device_mesh, x.placements)
            if is_sharded(y) and is_sharded(x) and y.shape == x.shape and y.placements != x.placements
            else y
            for x, y in zip(xs, ys)
        ]

    def add_(self, xs: list[Tensor], ys: list[Tensor], alpha: Scalar = 1.0) -> list[Tensor]:
        return super().add_(xs, self._aligned(xs, ys), alpha)

    def addcmul_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        return super().addcmul_(xs, self._aligned(xs, a), self._aligned(xs, b), s)

    def addcdiv_(self, xs: list[Tensor], a: list[Tensor], b: list[Tensor], s: Scalar = 1.0) -> list[Tensor]:
        return super().addcdiv_(xs, self._aligned(xs, a), self._aligned(xs, b), s)

    def lerp_(self, xs: list[Tensor], ys: list[Tensor], weight: Scalar) -> list[Tensor]:
        return super().lerp_(xs, self._aligned(xs, ys), weight)

    def maximum_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        return super().maximum_(xs, self._aligned(xs, ys))

    def ratio_or(self, num: list[Tensor], den: list[Tensor], default: float) -> list[Tensor]:
        if not num:
            return []
        values = super().ratio_or([local(n) for n in num], [local(d) for d in den], default)
        return _replicated_scalars(values, num)

    def where_positive(self, values: list[Tensor], gates: list[list[Tensor]], default: float) -> list[Tensor]:
        if not values:
            return []
        out = super().where_positive([local(v) for v in values], [[local(g) for g in gate] for gate in gates], default)
        return _replicated_scalars(out, values)

    def copy_(self, xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
        torch._foreach_copy_([local(x) for x in xs], [local(y) for y in self._aligned(xs, ys)])
        return xs

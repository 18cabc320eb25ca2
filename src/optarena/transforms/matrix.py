"""Matrix transforms: per-tensor work on whole matrices (Newton-Schulz, Kronecker statistics, eigenbases).

Elementwise transforms see lists of tensors; a matrix transform sees one matrix at a time,
because its work (matrix products, eigendecompositions) couples every element of a tensor
with every other. Each tensor is viewed as a matrix by a rule the transform states
(:func:`flattened_matrix`: a 2-D tensor is itself, a tensor of more dimensions is
``shape[0] x prod(shape[1:])``, the output channels against the fan-in of a convolution's
filter; 1-D and 0-D tensors are one row). The transform's :meth:`MatrixTransform.update_matrix`
turns that matrix (and the per-matrix state it keeps) into the matrix of the next update.

Matrix state (Kronecker statistics, inverse roots, eigenbases) is made by the transform when
it first meets a matrix, in the dtype of the math (float32 for half-precision parameters).

**Sharded parameters.** A ``DTensor`` parameter split into blocks of rows or columns is
gathered whole on one rank of its mesh (the matrices of a bucket dealt round-robin over the
ranks), the matrix work runs there with the matrix state that rank keeps, and each rank gets
back its own block of the result: two ``all_to_all`` exchanges per bucket and step, whatever
the number of matrices (:func:`distributed_matrix_step`). A replicated parameter is worked on
by every rank. The numbers are those of one process holding whole tensors.

**Compilation.** A chain with a matrix transform never takes the chunked compiled path of
elementwise chains (its work is per matrix, not per element): its buckets step eagerly
(:func:`optarena.optim.planning.plan_bucket` says so). The heavy part of a matrix transform can
be a *kernel* (:func:`kernel`): a function of tensors alone, run as it is or, with
``fused=True``, through ``torch.compile`` with dynamic shapes, one graph per kernel.
``fused=None`` does not compile them: on CPU it did not pay (docs/design.md, matrix transforms).
"""

from __future__ import annotations

import functools
import math
import threading
import types
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import Fresh, ListOps, _item
from optarena.transforms.sharding import is_sharded, local


def flattened_matrix(shape: Sequence[int]) -> tuple[int, int]:
    """The matrix a tensor of ``shape`` is seen as: ``(shape[0], prod(shape[1:]))`` for two or
    more dimensions, ``(1, n)`` for a vector of ``n`` and ``(1, 1)`` for a scalar."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return 1, int(shape[0])
    return int(shape[0]), math.prod(int(s) for s in shape[1:])


class MatrixTransform(Transform):
    """A transform whose work is per matrix: :meth:`update_matrix` on each tensor's matrix view.

    Subclasses declare ``matrix_state_keys`` (state they keep per matrix, counted among
    ``state_keys``) and implement :meth:`update_matrix`; :meth:`prepare` may add scalars (one
    float, or one per tensor) and statics as any transform. ``apply`` runs them tensor by tensor
    on both backends and handles sharded parameters (see the module's text).
    """

    elementwise = False
    needs_shape = True
    matrix: ClassVar[bool] = True
    matrix_state_keys: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.state_keys = tuple(dict.fromkeys((*cls.state_keys, *cls.matrix_state_keys)))

    def matrix_shape(self, shape: Sequence[int]) -> tuple[int, int]:
        """The matrix a tensor of ``shape`` is seen as (default :func:`flattened_matrix`)."""
        return flattened_matrix(shape)

    def prepare(self, ctx: StepContext) -> Prepared:
        return Prepared(static={"compiled": ctx_compiled(ctx)})

    def update_matrix(self, matrix: Tensor, state: dict[str, Any], values: dict[str, Any], k: Kernel) -> Tensor:
        """The next update of one matrix (``rows x cols``, the dtype of the math), from this
        step's update ``matrix``; ``state`` is the parameter's state dict (matrix state made here
        where missing), ``values`` this tensor's scalars by name."""
        raise NotImplementedError

    def tensor_values(self, k: Kernel, index: int) -> dict[str, Any]:
        """The scalars this transform prepared, for the tensor at ``index``."""
        return {name: _item(value, index) for name, value in k._prepared[k.current].scalars.items()}

    def step_tensor(self, update: Tensor, state: dict[str, Any], index: int, k: Kernel) -> Tensor:
        """One tensor's next update: its matrix view through :meth:`update_matrix`, shaped back."""
        if update.numel() == 0:
            return torch.zeros_like(update)
        rows, cols = self.matrix_shape(update.shape)
        out = self.update_matrix(update.reshape(rows, cols), state, self.tensor_values(k, index), k)
        return out.reshape(update.shape)

    def folds_per_tensor(self) -> bool:
        """Whether :meth:`apply_folded` may stand for :meth:`apply` followed by the chain's
        learning rate: the transform steps tensor by tensor (its ``apply`` is this class's)."""
        return type(self).apply is MatrixTransform.apply

    def apply_folded(self, updates: list[Tensor], k: Kernel, neg_lrs: Sequence[float]) -> None:
        """:meth:`apply`, then ``theta <- theta + neg_lr * u`` (the chain's learning rate,
        folded), tensor by tensor: each parameter takes its update as soon as it is made, so
        no update outlives its own tensor's step. Local, non-sharded tensors only."""
        for i, (param, update) in enumerate(zip(k.params, updates)):
            self.step_tensor_into(param, update, k.entries[i], i, k, neg_lrs[i])

    def step_tensor_into(
        self, param: Tensor, update: Tensor, state: dict[str, Any], index: int, k: Kernel, neg_lr: float
    ) -> None:
        """One tensor's step with the learning rate folded in: ``param += neg_lr *
        step_tensor(...)``. A transform may do it in one compiled graph instead (SM3)."""
        param.add_(self.step_tensor(update, state, index, k), alpha=neg_lr)

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        entries = k.entries
        out = list(updates)
        shared = [i for i, u in enumerate(updates) if is_sharded(u)]
        for i, u in enumerate(updates):
            if i not in shared:
                out[i] = self.step_tensor(u, entries[i], i, k)
        if shared:
            results = distributed_matrix_step(
                [updates[i] for i in shared],
                lambda j, whole: self.step_tensor(whole, entries[shared[j]], shared[j], k),
            )
            for i, result in zip(shared, results):
                out[i] = result
        return Fresh(out)


def ctx_compiled(ctx: StepContext) -> bool:
    """Whether this step's matrix kernels are compiled: the group asks for ``fused=True`` (and
    records no step for autograd)."""
    return compiles_kernels(ctx.group)


def compiles_kernels(group: dict[str, Any]) -> bool:
    """Whether a group's matrix kernels are compiled (``fused=True``, not ``differentiable``)."""
    return group.get("fused") is True and not group.get("differentiable")


def has_matrix_transform(transforms: Sequence[Transform]) -> bool:
    """Whether a chain holds a transform that works on whole matrices."""
    return any(getattr(t, "matrix", False) for t in transforms)


# -- kernels: the heavy part of a matrix transform, compiled when the step is fused ----------------

Result = TypeVar("Result")
_lock = threading.Lock()
_compiled_kernels: dict[Hashable, Callable[..., Any]] = {}
_broken_kernels: set[Hashable] = set()


def kernel(fn: Callable[..., Result]) -> Callable[..., Result]:
    """Make ``fn`` (tensors and fixed settings in, a tensor, a tuple of tensors or nothing out)
    a matrix kernel. A failed compilation runs ``fn`` again on the same inputs, which is safe
    because compilation traces the whole function (``fullgraph``) before any of it runs: a
    kernel may write its inputs in place (SM3's whole step does).

    ``kernel_fn(*args, compiled=False)`` runs it as it is; with ``compiled=True`` it runs
    through ``torch.compile`` (dynamic shapes, one graph per kernel and set of settings), or as
    it is, with one warning, where compilation is unavailable or fails.
    """

    @functools.wraps(fn)
    def run(*args: Any, compiled: bool = False) -> Result:
        if not compiled:
            return fn(*args)
        from optarena.optim import toolchain

        tensors = [a for a in args if isinstance(a, Tensor)]
        reason = toolchain.unavailable_reason(tensors[0].device) if tensors else "no tensor argument"
        settings = tuple((type(a).__name__, a) for a in args if not isinstance(a, Tensor))
        key = (fn.__module__, fn.__qualname__, settings, tuple(t.dtype for t in tensors), tensors[0].device.type)
        if reason is not None or key in _broken_kernels:
            if reason is not None:
                toolchain.warn_once(reason)
            return fn(*args)
        with _lock:
            compiled_fn = _compiled_kernels.get(key)
            if compiled_fn is None:
                compiled_fn = _compiled_kernels[key] = torch.compile(own_code(fn), dynamic=True, fullgraph=True)
        try:
            return compiled_fn(*args)
        except Exception as error:  # compilation failed: run as it is
            _broken_kernels.add(key)
            toolchain.warn_compile_failure(fn.__name__, error)
            return fn(*args)

    run.plain = fn  # type: ignore[attr-defined]
    return run


def own_code(fn: Callable[..., Result]) -> Callable[..., Result]:
    """``fn`` with a copy of its code object: torch.compile keeps its graphs, and its limit on
    recompilations, per code object, so each set of settings of a kernel gets its own (else a
    few settings, each with one graph per number of dimensions, exhaust the limit of one)."""
    return types.FunctionType(  # type: ignore[return-value]
        fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )


# -- sharded parameters: whole matrices on one rank each ------------------------------------------


def _sharded_dim(tensor: Tensor) -> int | None:
    """The dimension a 1-D mesh's ``Shard`` placement splits; None when replicated."""
    from torch.distributed.tensor import Shard

    (placement,) = tensor.placements
    return placement.dim if isinstance(placement, Shard) else None


def _local_shape(tensor: Tensor, rank: int) -> list[int]:
    """The shape of rank ``rank``'s part of a ``DTensor`` on a 1-D mesh."""
    from torch.distributed.tensor import Shard

    shape = list(tensor.shape)
    dim = _sharded_dim(tensor)
    if dim is not None:
        shape[dim] = Shard.local_shard_size_and_offset(shape[dim], tensor.device_mesh.size(), rank)[0]
    return shape


def _wrap_like(part: Tensor, like: Tensor) -> Tensor:
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(
        part, like.device_mesh, like.placements, run_check=False, shape=like.shape, stride=like.stride()
    )


def distributed_matrix_step(tensors: list[Tensor], step: Callable[[int, Tensor], Tensor]) -> list[Tensor]:
    """``step(j, whole_j)`` for each ``DTensor`` of ``tensors``, computed once, on one rank.

    On a 1-D mesh the ``j``-th tensor split by ``Shard`` is gathered on rank ``j % size`` (one
    ``all_to_all`` for all of them), stepped there, and its result split back into the same
    blocks (a second ``all_to_all``). Replicated tensors are stepped by every rank. On a mesh of
    more dimensions every rank gathers and steps every tensor. The results are ``DTensor``
    objects placed as the inputs.
    """
    from torch.distributed.tensor import DTensor, Replicate, Shard

    mesh = tensors[0].device_mesh
    if mesh.ndim != 1:
        out = []
        for j, t in enumerate(tensors):
            whole = DTensor.from_local(step(j, t.full_tensor()), mesh, [Replicate()] * mesh.ndim, run_check=False)
            out.append(whole.redistribute(mesh, t.placements))
        return out
    size, me = mesh.size(), mesh.get_local_rank()
    out: list[Tensor | None] = [None] * len(tensors)
    split = [j for j, t in enumerate(tensors) if _sharded_dim(t) is not None]
    for j, t in enumerate(tensors):
        if _sharded_dim(t) is None:  # replicated: every rank holds it whole
            out[j] = _wrap_like(step(j, local(t)), t)
    if not split:
        return out  # type: ignore[return-value]
    owner = {j: n % size for n, j in enumerate(split)}
    mine = [j for j in split if owner[j] == me]
    group = mesh.get_group()
    dtype, device = local(tensors[0]).dtype, local(tensors[0]).device

    # gather: each rank sends its block of every matrix to the matrix's owner
    send = [
        torch.cat(
            [local(tensors[j]).reshape(-1) for j in split if owner[j] == dest]
            or [torch.zeros(0, dtype=dtype, device=device)]
        )
        for dest in range(size)
    ]
    receive_sizes = [sum(math.prod(_local_shape(tensors[j], src)) for j in mine) for src in range(size)]
    received = _all_to_all(send, receive_sizes, group, dtype, device)
    wholes = {}
    for j in mine:
        t = tensors[j]
        blocks = []
        for src in range(size):
            shape = _local_shape(t, src)
            n = math.prod(shape)
            blocks.append(received[src][:n].view(shape))
            received[src] = received[src][n:]
        wholes[j] = torch.cat(blocks, dim=_sharded_dim(t))

    # the matrix work, on the owner
    results = {j: step(j, wholes[j]) for j in mine}

    # scatter: each owner sends every rank its block of each result
    send = []
    for dest in range(size):
        parts = []
        for j in mine:
            dim = _sharded_dim(tensors[j])
            length, offset = Shard.local_shard_size_and_offset(tensors[j].shape[dim], size, dest)
            parts.append(results[j].narrow(dim, offset, length).reshape(-1))
        send.append(torch.cat(parts) if parts else torch.zeros(0, dtype=dtype, device=device))
    receive_sizes = [
        sum(math.prod(_local_shape(tensors[j], me)) for j in split if owner[j] == src) for src in range(size)
    ]
    received = _all_to_all(send, receive_sizes, group, dtype, device)
    for src in range(size):
        for j in split:
            if owner[j] != src:
                continue
            shape = _local_shape(tensors[j], me)
            n = math.prod(shape)
            out[j] = _wrap_like(received[src][:n].view(shape).clone(), tensors[j])
            received[src] = received[src][n:]
    return out  # type: ignore[return-value]


def _all_to_all(
    send: list[Tensor], receive_sizes: list[int], group: Any, dtype: torch.dtype, device: torch.device
) -> list[Tensor]:
    """One ``all_to_all_single``: ``send[r]`` goes to rank ``r``; the blocks received, by source."""
    import torch.distributed as dist

    output = torch.empty(sum(receive_sizes), dtype=dtype, device=device)
    dist.all_to_all_single(output, torch.cat(send), receive_sizes, [s.numel() for s in send], group=group)
    return list(output.split(receive_sizes))

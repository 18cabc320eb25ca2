"""The tensors of a bucket as a compiled chain takes them: aliases, fixed-size chunks, padding and
one buffer of this step's numbers (:class:`ChunkPlan`), built once and reused from step to step."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch
from torch import Tensor

from optarena.transforms.base import Prepared, local_view

CHUNK = 4
"""Tensors per compiled call of an elementwise chain. Larger chunks mean fewer calls and a
longer first compilation (docs/design.md, "Measurements behind the compiled path")."""

SHAPED_CHUNK = 2
"""Tensors per compiled call of a chain that uses shapes (gradient centralisation, Adafactor's
factored moments). Their graphs are larger and can come one per rank, so the chunk is
smaller (docs/design.md)."""


def chunk_size(flat: bool) -> int:
    """Tensors per compiled call: :data:`CHUNK` for a chain that does not use shapes, else
    :data:`SHAPED_CHUNK`."""
    return CHUNK if flat else SHAPED_CHUNK


def alias(tensor: Tensor, flat: bool) -> Tensor:
    """A tensor sharing the memory of ``tensor``'s local part that is not a view (no ``_base`` to
    guard on; for a ``DTensor``, never the wrapper, which has no storage of its own)."""
    real = local_view(tensor)
    shape = (real.numel(),) if flat else tuple(real.shape)
    stride = (1,) if flat else tuple(real.stride())
    out = torch.empty(0, dtype=real.dtype, device=real.device)
    return out.set_(real.untyped_storage(), real.storage_offset(), shape, stride)


def fusable(tensor: Tensor, flat: bool, assume_grad: bool = False) -> bool:
    """Tensors the compiled graph takes: dense, contiguous, and without sizes 0 or 1.

    Sizes 0 and 1 are specialised by ``torch.compile``; such tensors are tiny, so they take
    the eager step instead of multiplying the compiled graphs. A tensor without a gradient
    counts as having a dense contiguous one with ``assume_grad`` (a plan made ahead of a step).
    """
    grad = tensor.grad
    if tensor.is_sparse or (grad is None and not assume_grad) or (grad is not None and grad.is_sparse):
        return False
    real = local_view(tensor)
    if not (real.is_contiguous() and (grad is None or local_view(grad).is_contiguous())):
        return False
    if flat:
        return real.numel() >= 2
    return real.dim() > 0 and min(real.shape) >= 2


_scratch: dict[tuple[Any, ...], list[Tensor]] = {}


def _padding(like: Tensor, count: int, slot: int, flat: bool) -> list[Tensor]:
    """``count`` zero tensors to fill the last chunk, distinct per ``slot`` (the list they pad).

    For a chain that does not use shapes (``flat``) they hold two elements, so padding costs
    nothing.
    Otherwise state may be shaped differently from its parameter (factored moments), so
    they copy the shapes of a real tensor of the group: its parameter, gradient and each
    state. Their values are never read back.
    """
    shape = (2,) if flat else tuple(like.shape)
    key = (like.dtype, like.device, shape, slot)
    have = _scratch.setdefault(key, [])
    while len(have) < count:
        have.append(torch.zeros(shape, dtype=like.dtype, device=like.device))
    return have[:count]


def scalar_dtype_for(param_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the scalars passed to the compiled chain: float64 for float64 parameters,
    float32 for every other (float32 math, including bf16/fp16 parameters' float32 math).

    The eager multi-tensor operations round a Python number to float32 for float32 tensors,
    so float32 scalars give the same values; float64 scalars made the kernel convert each
    one inside its loop (docs/design.md).
    """
    return torch.float64 if param_dtype == torch.float64 else torch.float32


def tensor_state_keys(states: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """The keys of per-element state (same shape as the parameter), identical for every tensor."""
    if not states:
        return ()

    def tensor_keys(state: dict[str, Any]) -> tuple[str, ...]:
        return tuple(sorted(k for k, v in state.items() if isinstance(v, Tensor) and v.dim() > 0))

    first = states[0].keys()
    keys = tensor_keys(states[0])
    for state in states[1:]:
        if state.keys() != first and tensor_keys(state) != keys:
            return None
    return keys


class ChunkPlan:
    """One bucket's arguments to the compiled chain, chunked and padded once, reused every step.

    Parameters and state are long-lived, so their storage aliases and the padded chunk lists
    are built once; a step only checks that no tensor has moved (data pointers), chunks the
    new gradients and writes the step's scalars into one preallocated buffer. The plan holds
    the old storage, so a replaced tensor can never reappear at the same address unnoticed.
    """

    MAX_PLANS = 64
    """Plans kept per optimizer; beyond this (buckets changing every step) they are rebuilt."""

    def __init__(
        self, bucket: list[Tensor], states: list[dict[str, Any]], state_keys: tuple[str, ...], flat: bool, rows: int
    ):
        self.flat = flat
        chunk = self.chunk = chunk_size(flat)
        self.pointers = self._pointers(bucket, states, state_keys)
        params = [alias(p, flat) for p in bucket]
        state_lists = [[alias(s[key], flat) for s in states] for key in state_keys]
        n = len(bucket)
        self.starts = range(0, n, chunk)
        self.padding = len(self.starts) * chunk - n
        """Slots of the last chunk that padding tensors fill."""
        smallest = min(range(n), key=lambda i: bucket[i].numel())
        self.grad_padding = _padding(params[smallest], self.padding, 1, flat)
        self.params = self._chunked(params, _padding(params[smallest], self.padding, 0, flat))
        self.states = [
            self._chunked(tensors, _padding(tensors[smallest], self.padding, 2 + j, flat))
            for j, tensors in enumerate(state_lists)
        ]
        first = local_view(bucket[0])
        shape = (len(self.starts), rows, chunk)
        self.scalars = torch.zeros(shape, dtype=scalar_dtype_for(first.dtype), device=first.device)
        self.scalar_chunks = [alias(self.scalars[c], flat=False) for c in range(len(self.starts))]

    @staticmethod
    def _pointers(
        bucket: list[Tensor], states: list[dict[str, Any]], state_keys: tuple[str, ...], plain: bool = False
    ) -> tuple[int, ...]:
        if plain:
            return tuple(map(Tensor.data_ptr, bucket)) + tuple(s[key].data_ptr() for key in state_keys for s in states)
        return tuple(local_view(p).data_ptr() for p in bucket) + tuple(
            local_view(s[key]).data_ptr() for key in state_keys for s in states
        )

    def _chunked(self, tensors: list[Tensor], padding: list[Tensor]) -> list[list[Tensor]]:
        padded = tensors + padding
        return [padded[start : start + self.chunk] for start in self.starts]

    def current(
        self, bucket: list[Tensor], states: list[dict[str, Any]], state_keys: tuple[str, ...], plain: bool = False
    ) -> bool:
        """Whether every parameter and state tensor is still where the plan saw it (``plain``:
        every tensor is real and of this process, so no view is needed to find its memory)."""
        return self._pointers(bucket, states, state_keys, plain) == self.pointers

    def grads(self, grads: list[Tensor]) -> list[list[Tensor]]:
        """This step's gradients, chunked: flattened (vectors as they are, the rest as views)
        for a flat chain (the graph never writes to them, so a view's base does not matter),
        else the gradients themselves."""
        if self.flat:
            grads = [g if g.dim() == 1 else g.view(-1) for g in grads]
        return self._chunked(grads, self.grad_padding)

    def write_scalars(self, prepared: list[Prepared]) -> None:
        """This step's numbers into the buffer ``[chunk, row, slot]``: one row per scalar, one
        slot per tensor. A single number fills its row; padding slots repeat a row's last value
        (padding is never read back). The buffer's dtype rounds them, as the eager path does."""
        row = 0
        for p in prepared:
            for value in p.scalars.values():
                target = self.scalars[:, row, :]
                if isinstance(value, (list, tuple)):
                    values = torch.tensor([*value, *[value[-1]] * self.padding], dtype=torch.float64)
                    target.copy_(values.view(target.shape), non_blocking=True)
                else:
                    target.fill_(float(value))
                row += 1


def plan_for(
    plans: dict[Hashable, ChunkPlan],
    bucket: list[Tensor],
    states: list[dict[str, Any]],
    state_keys: tuple[str, ...],
    flat: bool,
    rows: int,
    plain: bool = False,
) -> ChunkPlan | None:
    """The bucket's plan, built anew when a tensor moved; None when some state tensor is not
    contiguous (the compiled graph takes dense contiguous memory only)."""
    key = (tuple(id(p) for p in bucket), state_keys, flat, rows, chunk_size(flat))
    plan = plans.get(key)
    if plan is None or not plan.current(bucket, states, state_keys, plain):
        if not all(local_view(s[k]).is_contiguous() for k in state_keys for s in states):
            return None
        if len(plans) >= ChunkPlan.MAX_PLANS:
            plans.clear()
        plan = plans[key] = ChunkPlan(bucket, states, state_keys, flat, rows)
    return plan

"""The fused backend: a chain's math compiled by ``torch.compile`` into a few passes over memory.

The same :func:`optarena.optim.execution.run_chain` as the eager path is traced with
:data:`optarena.transforms.ops.LOOP` (per-tensor loops of ordinary tensor operations); Inductor
fuses each tensor's whole chain into one loop (C++/OpenMP on CPU, Triton on GPU).

What keeps it fast and free of recompilation:

- **Chunks of a fixed size.** Tensors go in groups of :data:`CHUNK` (:data:`SHAPED_CHUNK`
  for chains that use shapes; the last group padded with small scratch tensors), so one
  compiled graph serves every model, whatever its number of parameters.
- **Dynamic shapes without duck sizing.** Each tensor's size is its own symbol, so models
  with different shapes reuse the graph. Parameters and state are passed as storage aliases
  (not views), so nothing about a view's base enters the graph.
- **Arguments built once.** Each bucket's chunk lists (aliases, padding, the scalar buffer)
  are kept in a :class:`ChunkPlan` and reused while no tensor moves; a step adds only the
  gradients and this step's numbers.
- **Scalars as one tensor.** Every number ``prepare`` computed (learning rate, bias
  corrections, step-dependent weights) travels in a ``[rows, chunk]`` tensor, so a
  scheduler changing ``lr`` every step never recompiles. Its dtype is that of the math
  (:func:`scalar_dtype_for`), so the kernel never converts a scalar inside its loop. Only
  static facts (flags such as ``amsgrad``) and the set of state keys select a graph.
- **Disk cache.** Each chain structure is compiled ahead of time and kept on disk
  (:mod:`optarena.optim.compile_cache`), so a new process loads it instead of tracing again.

If compilation is unavailable (``OPTARENA_COMPILE=0``, no C++ compiler, no Triton) or fails,
the step runs eagerly with the same prepared values, and one warning says why.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Hashable

import torch
from torch import Tensor

from optarena.optim import compile_cache
from optarena.optim.execution import eager_update, prepare_step, run_chain
from optarena.transforms.base import Kernel, Prepared, Transform, local_view
from optarena.transforms.ops import LOOP, ROW_BLOCK

CHUNK = 4
"""Tensors per compiled call of an elementwise chain. Larger chunks mean fewer calls and
longer first compilation: against 8, a chunk of 4 compiles Adam in 4.8 s instead of 5.5
(Inductor's toolchain warm), with step times on the benchmark's parameters the same within
noise (41.9M parameters in 157 tensors); 157 tiny tensors cost 1.49 ms of calls per step
instead of 1.34."""

SHAPED_CHUNK = 2
"""Tensors per compiled call of a chain that uses shapes (gradient centralisation, Adafactor's
factored moments). Their graphs are larger and can come one per rank, so the chunk is
smaller: Adafactor's first step with Inductor's toolchain warm took 8.8 s instead of 10.4
(chunk 4), and 6.6 s with a chunk of 1, which cost about 1 ms per step in calls; with 2 the
step times matched a chunk of 4 within noise."""


def chunk_size(flat: bool) -> int:
    """Tensors per compiled call: :data:`CHUNK` for a chain that does not use shapes, else
    :data:`SHAPED_CHUNK`."""
    return CHUNK if flat else SHAPED_CHUNK


MINOR_RANK_SHARE = 0.01
"""A chain that uses shapes compiles one graph per tensor rank. Within a bucket, a rank whose
tensors hold less than this share of the bucket's elements takes the eager step instead:
Ranger's biases and normalisation scales (86k of the benchmark's 41.9M elements), for which
gradient centralisation does nothing, would cost a second graph, about 2 s of the first step
(with an empty cache, 8.9-10.1 -> 7.3-7.4 s), and step as fast eagerly (36.4 against 36.6
ms). Tensors that a transform puts in a bucket of their own (``bucket_key``: Adafactor's
unfactored vectors) are compiled: eagerly, Adafactor's per-tensor scalars cost 0.86 ms per
step (37.4 against 36.6 ms), more than the 2 s of compilation saves over a run. Set it to 0
to compile every rank."""

AUTO_MIN_ELEMENTS = 1 << 20
"""With ``fused=None`` a group is fused once it holds at least this many elements."""

ENV_SWITCH = "OPTARENA_COMPILE"
"""Set to ``0`` to turn the fused path off (every step runs eagerly)."""

_lock = threading.Lock()
_compiled: dict[Hashable, Callable[..., None]] = {}
_broken: dict[Hashable, str] = {}
_warned: set[str] = set()


# -- availability ------------------------------------------------------------------------------


def unavailable_reason(device: torch.device) -> str | None:
    """Why the fused path cannot run on ``device`` (None when it can)."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return f"{ENV_SWITCH}=0 is set"
    return _toolchain_problem(device.type)


@functools.cache
def _toolchain_problem(device_type: str) -> str | None:
    try:
        import torch._dynamo  # noqa: F401
        import torch._inductor  # noqa: F401
    except Exception as error:  # pragma: no cover - depends on the installation
        return f"torch.compile is not importable ({error})"
    if not torch._dynamo.is_dynamo_supported():  # pragma: no cover - depends on Python version
        return "torch.compile does not support this Python version"
    if device_type == "cpu":
        compiler = os.environ.get("CXX") or next(
            (c for c in ("g++", "c++", "clang++") if shutil.which(c)), None
        )
        if compiler is None or not shutil.which(compiler):
            return "no C++ compiler was found (install g++ or clang++, or set CXX)"
    elif device_type == "cuda":
        try:
            import triton  # noqa: F401
        except Exception:  # pragma: no cover - depends on the installation
            return "Triton is not installed"
    elif device_type not in ("cuda", "xpu"):
        return f"no fused kernels for device type {device_type!r}"
    return None


def warn_once(reason: str) -> None:
    """One warning per distinct reason, per process."""
    with _lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(
        f"optarena: the fused (compiled) optimizer step is unavailable: {reason}. "
        f"Falling back to the eager multi-tensor step (same results, slower). "
        f"Set {ENV_SWITCH}=0 to choose the eager step silently.",
        RuntimeWarning,
        stacklevel=4,
    )


def should_fuse(group: dict[str, Any], params: Sequence[Tensor]) -> bool:
    """Whether this group's step takes the fused path (``fused`` True, or None and large enough)."""
    choice = group.get("fused")
    if choice is False or not params:
        return False
    if choice is None:
        if group.get("foreach") is False or sum(p.numel() for p in params) < AUTO_MIN_ELEMENTS:
            return False
        if os.environ.get(ENV_SWITCH, "1").strip() == "0":
            return False
    reason = unavailable_reason(params[0].device)
    if reason is not None:
        if choice is True:
            refuse_where_torch_refuses(params)
        warn_once(reason)
        return False
    return True


def refuse_where_torch_refuses(params: Sequence[Tensor]) -> None:
    """torch.optim's error for ``fused=True`` on tensors no fused kernel takes (the meta device,
    integer tensors); elsewhere an unavailable fused path falls back to the eager step."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        supported = _get_fused_kernels_supported_devices()
    except ImportError:  # pragma: no cover - older torch
        supported = ["mps", "cuda", "xpu", "hpu", "cpu"]
    for p in params:
        if p.device.type not in supported or not torch.is_floating_point(p):
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: "
                f"{supported} but {p.dtype} and {p.device.type}"
            )


# -- tensors as the compiled graph sees them ------------------------------------------------------


def _alias(tensor: Tensor, flat: bool) -> Tensor:
    """A tensor sharing the memory of ``tensor``'s local part that is not a view (no ``_base`` to
    guard on; for a ``DTensor``, never the wrapper, which has no storage of its own)."""
    real = local_view(tensor)
    shape = (real.numel(),) if flat else tuple(real.shape)
    stride = (1,) if flat else tuple(real.stride())
    out = torch.empty(0, dtype=real.dtype, device=real.device)
    return out.set_(real.untyped_storage(), real.storage_offset(), shape, stride)


def fusable(tensor: Tensor, flat: bool) -> bool:
    """Tensors the compiled graph takes: dense, contiguous, and without sizes 0 or 1.

    Sizes 0 and 1 are specialised by ``torch.compile``; such tensors are tiny, so they take
    the eager step instead of multiplying the compiled graphs.
    """
    if tensor.is_sparse or tensor.grad is None or tensor.grad.is_sparse:
        return False
    real = local_view(tensor)
    if not (real.is_contiguous() and local_view(tensor.grad).is_contiguous()):
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


# -- the compiled function ------------------------------------------------------------------------


def _make_body(
    body: tuple[Transform, ...],
    fold: Transform | None,
    maximize: bool,
    layout: tuple[tuple[str, ...], ...],
    statics: tuple[tuple[tuple[str, Hashable], ...], ...],
    state_keys: tuple[str, ...],
    compute_dtype: torch.dtype | None,
) -> Callable[..., None]:
    """The function ``torch.compile`` traces: unpack the scalars, run the chain, update params."""

    def fused_chain(params: list[Tensor], grads: list[Tensor], states: list[list[Tensor]], sc: Tensor) -> None:
        n = len(params)
        prepared = []
        row = 0
        for names, static in zip(layout, statics):
            values = {}
            for name in names:
                values[name] = [sc[row, i] for i in range(n)]
                row += 1
            prepared.append(Prepared(values, dict(static)))
        kernel = Kernel(params, dict(zip(state_keys, states)), prepared)
        run_chain(LOOP, body, fold, kernel, grads, maximize, compute_dtype)

    return fused_chain


@contextlib.contextmanager
def _compile_settings():
    """Per-tensor size symbols (no duck sizing), Python floats as constants, and room for one
    graph per chain structure.

    Every number that changes between steps travels in the scalar tensor, so a Python float
    the trace meets is a construction setting (RangerLARS's ``param_norm_range``), part of the
    cache key. Left symbolic, Dynamo traced such a float, found it had to specialise it, and
    traced the whole chain again (RangerLARS: two traces, 1.6 s of the first step).
    """
    import torch._dynamo.config as dynamo_config
    import torch.fx.experimental._config as fx_config

    with fx_config.patch(use_duck_shape=False), dynamo_config.patch(
        recompile_limit=512, accumulated_recompile_limit=4096, specialize_float=True
    ):
        yield


INDUCTOR_OPTIONS = {
    "emulate_precision_casts": True,
    "cpp.dynamic_threads": True,
    "size_asserts": False,
    "alignment_asserts": False,
}
"""``emulate_precision_casts``: a bf16/fp16 parameter written and read back inside the kernel
must be the rounded value, or the rounding remainder of half-precision parameters would come
out as zero. ``cpp.dynamic_threads``: each loop picks its thread count from its size at run
time, so small tensors do not pay for a parallel region (measured: 1.29x torch's fused Adam
without it, 1.08x with it, on the benchmark's parameter set with two threads). No size or
alignment asserts: every argument is a dense contiguous alias or view that this module built
and checked (:func:`fusable`, :class:`ChunkPlan`), and the 33 checks per call of a chunk of 8
cost about 0.5 ms per step of the benchmark's Adam."""


STAND_IN_FIRST = 2 * ROW_BLOCK + 19
"""The smallest size of a stand-in tensor's dimension (:func:`stand_ins`): two whole blocks of
rows and a remainder of 19."""


def stand_ins(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments of a compiled chain with parameter, gradient and state tensors replaced by
    empty ones whose sizes avoid every special case, for the trace.

    The graph is traced once and then runs on every model without guards, so it must not
    depend on the sizes it was traced with. Some reductions split a size (Adafactor's column
    means sum blocks of 32 rows: ``rows // 32`` blocks and a remainder); traced with 40 rows,
    one block would be specialised away, and with 20 none would exist. Each distinct size
    becomes ``83 + 32 k`` (at least two blocks, a remainder that is neither 0 nor 1), so
    sizes equal in the real arguments stay equal and no others are. Tensors of more than two
    dimensions, whose graphs split no size, are kept (their stand-ins could be large).
    """
    params, grads, states, scalars = args
    tensors = [*params, *grads, *(t for chunk in states for t in chunk)]
    if any(t.dim() > 2 for t in tensors):
        return args
    sizes = sorted({size for t in tensors for size in t.shape})
    mapped = {size: STAND_IN_FIRST + ROW_BLOCK * k for k, size in enumerate(sizes)}

    def like(t: Tensor) -> Tensor:
        return torch.empty([mapped[size] for size in t.shape], dtype=t.dtype, device=t.device)

    return [like(t) for t in params], [like(t) for t in grads], [[like(t) for t in chunk] for chunk in states], scalars


class CompiledChain:
    """One chain structure's compiled function, made at its first call.

    It is loaded from the disk cache (:mod:`optarena.optim.compile_cache`) when an entry
    exists; otherwise it is compiled ahead of time on the first call's arguments and saved.
    The cache key fixes everything the graph depends on but sizes (structure, flags, state
    keys, dtype, rank, chunk size), and only dense contiguous tensors reach it, so Dynamo's
    per-call guard evaluation is switched off. Where ahead-of-time compilation is not
    possible, ``torch.compile`` compiles it just in time, as usual.
    """

    def __init__(self, key: Hashable, make: Callable[[], Callable[..., None]], transforms: Sequence[Transform]):
        self.key = key
        self.make = make
        self.modules = tuple(type(t).__module__ for t in transforms)
        """The modules whose code the trace reads besides the runtime's (the cache entry hashes them)."""
        self.entry = compile_cache.entry_name(key, self.modules)
        self.fn: Callable[..., None] | None = None
        self.source = ""
        """'disk', 'compiled' or 'just in time', once made."""

    def _create(self, args: tuple[Any, ...]) -> Callable[..., None]:
        loaded = compile_cache.load(self.entry, self.modules) if self.entry else None
        if loaded is not None:
            loaded.disable_guard_check()
            self.source = "disk"
            return loaded
        on_cpu = args[0][0].device.type == "cpu"
        if on_cpu:  # CPU kernels: Inductor will probe the vector ISAs
            compile_cache.start_isa_probes()
        compiler = torch.compile(self.make(), dynamic=True, fullgraph=True, options=INDUCTOR_OPTIONS)
        compiled = None
        example = stand_ins(args)
        for _ in range(3):
            try:
                compiled = compiler.aot_compile((example, {}))
                break
            except Exception as error:
                # Dynamo asks for a second trace when it turns a Python float into a tensor;
                # just-in-time compilation retries by itself, ahead-of-time compilation does not
                if type(error).__name__ != "TensorifyScalarRestartAnalysis":
                    break
        if compiled is None:
            self.source = "just in time"
            return compiler
        if self.entry:
            compile_cache.save(self.entry, compiled)
            if on_cpu:
                compile_cache.remember_isa_probes()
        compiled.disable_guard_check()
        self.source = "compiled"
        return compiled

    def __call__(self, *args: Any) -> None:
        if self.fn is None:
            with _compile_settings():
                self.fn = self._create(args)
        if self.source == "just in time":
            with _compile_settings():  # it may compile again on any call
                self.fn(*args)
        else:
            self.fn(*args)


def _compiled_for(
    key: Hashable, make: Callable[[], Callable[..., None]], transforms: Sequence[Transform] = ()
) -> Callable[..., None]:
    with _lock:
        fn = _compiled.get(key)
        if fn is None:
            fn = CompiledChain(key, make, transforms)
            _compiled[key] = fn
    return fn


# -- one step -------------------------------------------------------------------------------------


def _structure(transforms: Sequence[Transform]) -> tuple[Hashable, ...]:
    """What identifies a chain for compilation: each transform's class and construction settings."""
    return tuple((type(t).__module__, type(t).__qualname__, t.describe()) for t in transforms)


def _tensor_state_keys(states: list[dict]) -> tuple[str, ...] | None:
    """The keys of per-element state (same shape as the parameter), identical for every tensor."""
    if not states:
        return ()

    def tensor_keys(state: dict) -> tuple[str, ...]:
        return tuple(sorted(k for k, v in state.items() if isinstance(v, Tensor) and v.dim() > 0))

    first = states[0].keys()
    keys = tensor_keys(states[0])
    for state in states[1:]:
        if state.keys() != first and tensor_keys(state) != keys:
            return None
    return keys


def fused_update(
    transforms: Sequence[Transform],
    group: dict[str, Any],
    bucket: list[Tensor],
    states: list[dict],
    uses_step: bool,
    plans: dict[Hashable, "ChunkPlan"] | None = None,
) -> None:
    """One step over ``bucket`` through the compiled chain (tensors it cannot take go eagerly).

    ``plans`` belongs to one optimizer: the chunked arguments of each bucket, reused from step
    to step (cleared when the optimizer's state is reloaded). A chain that uses shapes compiles
    one graph per rank; a rank holding less than :data:`MINOR_RANK_SHARE` of the bucket's
    elements runs eagerly.
    """
    plans = {} if plans is None else plans
    flat = not any(t.uses_shapes() for t in transforms)
    taken = [i for i, p in enumerate(bucket) if fusable(p, flat)]
    parts = [taken] if flat else _major_ranks(bucket, taken)
    compiled = {i for part in parts for i in part}
    if len(compiled) < len(bucket):
        eager = [i for i in range(len(bucket)) if i not in compiled]
        eager_update(transforms, group, [bucket[i] for i in eager], [states[i] for i in eager], uses_step)
    for part in parts:
        if part:
            chosen, chosen_states = [bucket[i] for i in part], [states[i] for i in part]
            _fused_group(transforms, group, chosen, chosen_states, uses_step, flat, plans)


def _major_ranks(bucket: list[Tensor], indices: list[int]) -> list[list[int]]:
    """``indices`` grouped by tensor rank (one graph each), leaving out the ranks that hold less
    than :data:`MINOR_RANK_SHARE` of their elements."""
    by_rank: dict[int, list[int]] = {}
    for i in indices:
        by_rank.setdefault(local_view(bucket[i]).dim(), []).append(i)
    least = MINOR_RANK_SHARE * sum(bucket[i].numel() for i in indices)
    return [part for part in by_rank.values() if sum(bucket[i].numel() for i in part) >= least]


def scalar_dtype_for(param_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the scalars passed to the compiled chain: float64 for float64 parameters,
    float32 for every other (float32 math, including bf16/fp16 parameters' float32 math).

    The eager multi-tensor operations round a Python number to float32 for float32 tensors,
    so float32 scalars give the same values; float64 scalars made the kernel convert each
    one inside its loop (measured: Adam 1.13x -> 1.05x torch's fused Adam).
    """
    return torch.float64 if param_dtype == torch.float64 else torch.float32


class ChunkPlan:
    """One bucket's arguments to the compiled chain, chunked and padded once, reused every step.

    Parameters and state are long-lived, so their storage aliases and the padded chunk lists
    are built once; a step only checks that no tensor has moved (data pointers), chunks the
    new gradients and writes the step's scalars into one preallocated buffer. The plan holds
    the old storage, so a replaced tensor can never reappear at the same address unnoticed.
    """

    MAX_PLANS = 64
    """Plans kept per optimizer; beyond this (buckets changing every step) they are rebuilt."""

    def __init__(self, bucket: list[Tensor], states: list[dict], state_keys: tuple[str, ...], flat: bool, rows: int):
        self.flat = flat
        chunk = self.chunk = chunk_size(flat)
        self.pointers = self._pointers(bucket, states, state_keys)
        params = [_alias(p, flat) for p in bucket]
        state_lists = [[_alias(s[key], flat) for s in states] for key in state_keys]
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
        self.scalar_chunks = [_alias(self.scalars[c], flat=False) for c in range(len(self.starts))]

    @staticmethod
    def _pointers(bucket: list[Tensor], states: list[dict], state_keys: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(local_view(p).data_ptr() for p in bucket) + tuple(
            local_view(s[key]).data_ptr() for key in state_keys for s in states
        )

    def _chunked(self, tensors: list[Tensor], padding: list[Tensor]) -> list[list[Tensor]]:
        padded = tensors + padding
        return [padded[start:start + self.chunk] for start in self.starts]

    def current(self, bucket: list[Tensor], states: list[dict], state_keys: tuple[str, ...]) -> bool:
        """Whether every parameter and state tensor is still where the plan saw it."""
        return self._pointers(bucket, states, state_keys) == self.pointers

    def grads(self, grads: list[Tensor]) -> list[list[Tensor]]:
        """This step's gradients, chunked: flattened views for a flat chain (the graph never
        writes to them, so a view's base does not matter), else the gradients themselves."""
        if self.flat:
            grads = [g.view(-1) for g in grads]
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


def _plan_for(
    plans: dict[Hashable, ChunkPlan],
    bucket: list[Tensor],
    states: list[dict],
    state_keys: tuple[str, ...],
    flat: bool,
    rows: int,
) -> ChunkPlan | None:
    """The bucket's plan, built anew when a tensor moved; None when some state tensor is not
    contiguous (the compiled graph takes dense contiguous memory only)."""
    key = (tuple(id(p) for p in bucket), state_keys, flat, rows, chunk_size(flat))
    plan = plans.get(key)
    if plan is None or not plan.current(bucket, states, state_keys):
        if not all(local_view(s[k]).is_contiguous() for k in state_keys for s in states):
            return None
        if len(plans) >= ChunkPlan.MAX_PLANS:
            plans.clear()
        plan = plans[key] = ChunkPlan(bucket, states, state_keys, flat, rows)
    return plan


def _fused_group(
    transforms: Sequence[Transform],
    group: dict[str, Any],
    bucket: list[Tensor],
    states: list[dict],
    uses_step: bool,
    flat: bool,
    plans: dict[Hashable, ChunkPlan],
) -> None:
    step = prepare_step(transforms, group, bucket, states, uses_step)
    prepared, body, fold, maximize, compute_dtype = (
        step.prepared, step.body, step.fold, step.maximize, step.compute_dtype
    )
    state_keys = _tensor_state_keys(states)

    def eager_rest(start: int) -> None:
        step.run_eagerly(range(start, len(bucket)))

    if state_keys is None:
        eager_rest(0)
        return
    layout = tuple(tuple(p.scalars) for p in prepared)
    statics = tuple(tuple(sorted(p.static.items())) for p in prepared)
    first = local_view(bucket[0])
    key = (
        _structure(transforms),
        fold is not None,
        maximize,
        layout,
        statics,
        state_keys,
        flat,
        1 if flat else first.dim(),
        first.dtype,
        first.device.type,
        compute_dtype,
        chunk_size(flat),
    )
    if key in _broken:
        eager_rest(0)
        return
    fn = _compiled_for(
        key,
        lambda: _make_body(tuple(body), fold, maximize, layout, statics, state_keys, compute_dtype),
        transforms,
    )
    rows = sum(len(p.scalars) for p in prepared)
    plan = _plan_for(plans, bucket, states, state_keys, flat, rows)
    if plan is None:
        eager_rest(0)
        return
    plan.write_scalars(prepared)
    grad_chunks = plan.grads(step.grads)
    for index, start in enumerate(plan.starts):
        states_chunk = [chunks[index] for chunks in plan.states]
        try:
            fn(plan.params[index], grad_chunks[index], states_chunk, plan.scalar_chunks[index])
        except Exception as error:  # compilation failed: nothing of this chunk has run
            _broken[key] = f"{type(error).__name__}: {error}"
            warn_once(f"compiling this chain failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            eager_rest(start)
            return

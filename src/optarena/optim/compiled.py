"""Compiled chains: the traced function, its compile settings and one compiled function per chain
structure, loaded from or saved to the disk cache (:mod:`optarena.optim.compile_cache`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from optarena.optim import compile_cache, toolchain
from optarena.optim.execution import run_chain
from optarena.transforms.base import Kernel, Prepared, Transform
from optarena.transforms.ops import LOOP, ROW_BLOCK

_lock = threading.Lock()
_compiled: dict[Hashable, CompiledChain] = {}
_broken: dict[Hashable, str] = {}
"""Chain structures whose compilation failed, with the reason: they step eagerly."""


def give_up(key: Hashable, what: str, error: BaseException) -> None:
    """Remember that compiling ``key`` failed (it runs eagerly from now on) and warn once."""
    _broken[key] = f"{type(error).__name__}: {error}"
    toolchain.warn_compile_failure(what, error)


def make_body(
    body: tuple[Transform, ...],
    fold: Transform | None,
    maximize: bool,
    layout: tuple[tuple[str, ...], ...],
    statics: tuple[tuple[tuple[str, Hashable], ...], ...],
    state_keys: tuple[str, ...],
    compute_dtype: torch.dtype | None,
    recording: bool = False,
) -> Callable[..., dict[str, Tensor] | None]:
    """The function ``torch.compile`` traces: unpack the scalars, run the chain, update params;
    when ``recording``, return the signals the chain reported, one stacked tensor per name."""

    def fused_chain(
        params: list[Tensor], grads: list[Tensor], states: list[list[Tensor]], sc: Tensor
    ) -> dict[str, Tensor] | None:
        n = len(params)
        prepared = []
        row = 0
        for names, static in zip(layout, statics):
            values = {}
            for name in names:
                values[name] = [sc[row, i] for i in range(n)]
                row += 1
            prepared.append(Prepared(values, dict(static)))
        kernel = Kernel(params, dict(zip(state_keys, states)), prepared, recording=recording)
        run_chain(LOOP, body, fold, kernel, grads, maximize, compute_dtype)
        if kernel.signals is None:
            return None
        return {name: torch.stack(values) for name, values in kernel.signals.items()}

    return fused_chain


def l1_norm(param: Tensor, grad: Tensor, states: list[Tensor], k: dict[str, Tensor], static: dict) -> list[Tensor]:
    """A group pass's math (:func:`make_group_pass_body`) that only reads: ``sum |s|`` of the one
    state it is given."""
    return [states[0].abs().sum()]


def make_group_pass_body(
    math: Callable[..., list[Tensor]], names: tuple[str, ...], static: tuple[tuple[str, Hashable], ...]
) -> Callable[..., Tensor]:
    """The function ``torch.compile`` traces for a group-wide preparation's per-tensor pass
    (:class:`~optarena.transforms.base.GroupPass`): ``math`` over each tensor, its scalars read
    from row ``names.index(name)`` of the scalar tensor; one row of sums per tensor."""
    facts = dict(static)

    def group_pass(params: list[Tensor], grads: list[Tensor], states: list[list[Tensor]], sc: Tensor) -> Tensor:
        rows = []
        for i in range(len(params)):
            scalars = {name: sc[row, i] for row, name in enumerate(names)}
            rows.append(torch.stack(math(params[i], grads[i], [chunk[i] for chunk in states], scalars, facts)))
        return torch.stack(rows)

    return group_pass


@contextlib.contextmanager
def _compile_settings():
    """Per-tensor size symbols (no duck sizing), Python floats as constants, and room for one
    graph per chain structure.

    Every number that changes between steps travels in the scalar tensor, so a Python float
    the trace meets is a construction setting (RangerLARS's ``param_norm_range``), part of the
    cache key. Left symbolic, Dynamo traced such a float, found it had to specialise it, and
    traced the whole chain again.
    """
    import torch._dynamo.config as dynamo_config
    import torch.fx.experimental._config as fx_config

    with (
        fx_config.patch(use_duck_shape=False),
        dynamo_config.patch(recompile_limit=512, accumulated_recompile_limit=4096, specialize_float=True),
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
time, so small tensors do not pay for a parallel region. No size or alignment asserts: every
argument is a dense contiguous alias or view that :mod:`optarena.optim.chunks` built and
checked, and the checks cost time on every call (docs/design.md has the figures)."""


RECOMPUTE_OPTIONS = {"realize_reads_threshold": 64, "realize_opcount_threshold": 1000}
"""Options for a chain with a transform that reduces its incoming update before using it
(:attr:`optarena.transforms.base.Transform.reduces_update`: the cautious mask). The update is
then needed in two passes, the reduction's and the parameter update's, and by default Inductor
stores it in a temporary tensor because its expression reads more than four tensors
(``realize_reads_threshold``) or is long (``realize_opcount_threshold``). With these options
it is recomputed in the second pass from the gradient, state and parameters that pass reads
anyway, so no temporary as large as a parameter is written and read back. The values are the
same: the same operations run on the same inputs. Not for LAMB's trust ratio, whose first pass
would then have to read the moments and gradient twice (44 bytes per parameter against 40);
docs/floors.md has the figures."""


def compile_options(transforms: Sequence[Transform]) -> dict[str, Any]:
    """Inductor's options for a chain: :data:`INDUCTOR_OPTIONS`, with :data:`RECOMPUTE_OPTIONS`
    where a transform reduces its incoming update before using it."""
    if any(t.reduces_update for t in transforms):
        return {**INDUCTOR_OPTIONS, **RECOMPUTE_OPTIONS}
    return dict(INDUCTOR_OPTIONS)


GROUP_PASS_OPTIONS = {**INDUCTOR_OPTIONS, "realize_reads_threshold": 3}
"""Options for a group pass (:func:`make_group_pass_body`), whose updated state (Prodigy's and
D-Adaptation's ``s``) is both written back and summed. Inductor inlines an expression that
reads at most ``realize_reads_threshold`` tensors and scalars into each user: the state's sum
in the reduction loop, and the write in a second loop at the end of the graph, which reads the
state and gradient again. Realised instead (the updated state reads the state, the gradient
and two scalars at least: four), the reduction loop writes it into the state itself: one loop
per tensor, where no other reduction reads the old state (Prodigy's). The direction (the gradient, negated or with coupled decay: three reads at most)
stays inlined, so nothing as large as a parameter is stored (docs/floors.md)."""


STEP_PASS_OPTIONS = {**GROUP_PASS_OPTIONS, "realize_acc_reads_threshold": 2}
"""Options for a group pass that is the whole step (:attr:`~optarena.transforms.base.GroupPass.covers`:
D-Adaptation Adam's), whose inner product reads the old state the same loop overwrites. By
default Inductor inlines the product's terms into the reduction, which then reads the state
itself and may not share a loop with the write that follows it (on CPU a loop that reduces is
never fused with a later one): two loops. With each term's expression realised once it reads
more than two buffers, the reduction reads the terms, computed in the loop that updates the
state, and the whole step is one loop per tensor, the terms kept in registers (docs/floors.md)."""


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

    def __init__(
        self,
        key: Hashable,
        make: Callable[[], Callable[..., Any]],
        transforms: Sequence[Transform],
        options: dict[str, Any] | None = None,
    ):
        self.key = key
        self.make = make
        self.modules = tuple(module for t in transforms for module in t.source_modules())
        """The modules whose code the trace reads besides the runtime's (the cache entry hashes them)."""
        self.options = compile_options(transforms) if options is None else options
        """Inductor's options for this chain (part of what the structure in ``key`` fixes)."""
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
        compiler = torch.compile(self.make(), dynamic=True, fullgraph=True, options=self.options)
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

    def __call__(self, *args: Any) -> Any:
        if self.fn is None:
            with _compile_settings():
                self.fn = self._create(args)
        if self.source == "just in time":
            with _compile_settings():  # it may compile again on any call
                return self.fn(*args)
        return self.fn(*args)


def compiled_for(
    key: Hashable,
    make: Callable[[], Callable[..., Any]],
    transforms: Sequence[Transform] = (),
    options: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """The compiled function of ``key``, made by ``make`` at its first call (Inductor's
    ``options``: by default the chain's, :func:`compile_options`)."""
    with _lock:
        fn = _compiled.get(key)
        if fn is None:
            fn = CompiledChain(key, make, transforms, options)
            _compiled[key] = fn
    return fn


def structure(transforms: Sequence[Transform]) -> tuple[Hashable, ...]:
    """What identifies a chain for compilation: each transform's class and construction settings."""
    return tuple((type(t).__module__, type(t).__qualname__, t.describe()) for t in transforms)

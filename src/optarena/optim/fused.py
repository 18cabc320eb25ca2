"""The fused backend: a chain's math compiled by ``torch.compile`` into a few passes over memory.

This module carries out a bucket's plan (:mod:`optarena.optim.planning`): the tensors the plan
compiles go through one compiled function per chain structure (:mod:`optarena.optim.compiled`)
in fixed-size chunks (:mod:`optarena.optim.chunks`), the rest through the eager step. The same
:func:`optarena.optim.execution.run_chain` as the eager path is traced with
:data:`optarena.transforms.ops.LOOP` (per-tensor loops of ordinary tensor operations); Inductor
fuses each tensor's whole chain into one loop (C++/OpenMP on CPU, Triton on GPU).

What keeps it fast and free of recompilation:

- **Chunks of a fixed size.** Tensors go in groups of :data:`~optarena.optim.chunks.CHUNK` (:data:`~optarena.optim.chunks.SHAPED_CHUNK`
  for chains that use shapes; the last group padded with small scratch tensors), so one
  compiled graph serves every model, whatever its number of parameters.
- **Dynamic shapes without duck sizing.** Each tensor's size is its own symbol, so models
  with different shapes reuse the graph. Parameters and state are passed as storage aliases
  (not views), so nothing about a view's base enters the graph.
- **Arguments built once.** Each bucket's chunk lists (aliases, padding, the scalar buffer)
  are kept in a :class:`~optarena.optim.chunks.ChunkPlan` and reused while no tensor moves; a step adds only the
  gradients and this step's numbers.
- **Scalars as one tensor.** Every number ``prepare`` computed (learning rate, bias
  corrections, step-dependent weights) travels in a ``[rows, chunk]`` tensor, so a
  scheduler changing ``lr`` every step never recompiles. Its dtype is that of the math
  (:func:`optarena.optim.chunks.scalar_dtype_for`), so the kernel never converts a scalar inside its loop. Only
  static facts (flags such as ``amsgrad``) and the set of state keys select a graph.
- **Disk cache.** Each chain structure is compiled ahead of time and kept on disk
  (:mod:`optarena.optim.compile_cache`), so a new process loads it instead of tracing again.

If compilation is unavailable (``OPTARENA_COMPILE=0``, no C++ compiler, no Triton) or fails,
the step runs eagerly with the same prepared values, and one warning says why.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from optarena.optim import compiled
from optarena.optim.chunks import ChunkPlan, chunk_size, plan_for, tensor_state_keys
from optarena.optim.execution import Signals, eager_update, prepare_step
from optarena.optim.planning import Bucket, BucketPlan
from optarena.transforms.base import local_view


def step_bucket(bucket: Bucket, plan: BucketPlan, chunk_plans: dict[Hashable, ChunkPlan]) -> Signals:
    """One step of ``bucket`` as ``plan`` says: the eager tensors first, then each compiled graph.

    ``chunk_plans`` belongs to one optimizer: the chunked arguments of each bucket, reused from
    step to step (cleared when the optimizer's state is reloaded). Returns the step's signals
    when the bucket records them, one value per tensor of the bucket.
    """
    if plan.kernel is not None:
        if bucket.gathered is not None:
            plan.kernel.step(bucket.gathered)
        else:
            plan.kernel.run(prepare_step(bucket, plan.mode))
        return {}
    parts: list[tuple[Sequence[int], Signals]] = []
    if plan.eager:
        part = bucket if len(plan.eager) == len(bucket.params) else bucket.subset(plan.eager)
        parts.append((plan.eager, eager_update(part, plan.mode)))
    for indices in plan.compiled:
        parts.append((indices, step_compiled(bucket.subset(indices), chunk_plans)))
    if not bucket.recording:
        return {}
    signals: dict[str, list[float]] = {}
    for indices, found in parts:
        for name, values in found.items():
            slots = signals.setdefault(name, [float("nan")] * len(bucket.params))
            for i, value in zip(indices, values):
                slots[i] = value
    return signals


def step_compiled(bucket: Bucket, chunk_plans: dict[Hashable, ChunkPlan]) -> Signals:
    """The compiled step of a bucket whose every tensor the graph takes (one rank, for a shaped
    chain). What cannot run compiled at step time (state of differing kinds, a failed
    compilation) runs eagerly with the same prepared values. Returns the signals, when
    recording (the compiled function then returns them: a graph of its own, traced once)."""
    params, states, flat = bucket.params, bucket.states, bucket.flat
    step = prepare_step(bucket)
    prepared, body, fold, maximize, compute_dtype = (
        step.prepared,
        step.body,
        step.fold,
        step.maximize,
        step.compute_dtype,
    )
    state_keys = tensor_state_keys(states)

    if state_keys is None:
        return step.run_eagerly()
    layout = tuple(tuple(p.scalars) for p in prepared)
    statics = tuple(tuple(sorted(p.static.items())) for p in prepared)
    first = local_view(params[0])
    key = (
        compiled.structure(bucket.transforms),
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
        bucket.recording,
    )
    if key in compiled._broken:
        return step.run_eagerly()
    fn = compiled.compiled_for(
        key,
        lambda: compiled.make_body(
            tuple(body), fold, maximize, layout, statics, state_keys, compute_dtype, bucket.recording
        ),
        bucket.transforms,
    )
    rows = sum(len(p.scalars) for p in prepared)
    plan = plan_for(chunk_plans, params, states, state_keys, flat, rows, bucket.plain)
    if plan is None:
        return step.run_eagerly()
    plan.write_scalars(prepared)
    grad_chunks = plan.grads(step.grads)
    outputs = []
    for index, start in enumerate(plan.starts):
        states_chunk = [chunks[index] for chunks in plan.states]
        try:
            outputs.append(fn(plan.params[index], grad_chunks[index], states_chunk, plan.scalar_chunks[index]))
        except Exception as error:  # compilation failed: nothing of this chunk has run
            compiled.give_up(key, "this chain", error)
            done = _collect(outputs, start)
            rest = step.run_eagerly(range(start, len(params)))
            prepared = step.prepared_signals()
            return {**prepared, **{name: done[name] + values for name, values in rest.items() if name in done}}
    return {**step.prepared_signals(), **_collect(outputs, len(params))}


def _collect(outputs: list[dict[str, Tensor] | None], count: int) -> Signals:
    """The compiled chunks' signals as floats, in order, without the padding slots."""
    stacked: dict[str, list[Tensor]] = {}
    for found in outputs:
        for name, values in (found or {}).items():
            stacked.setdefault(name, []).append(values)
    return {name: torch.cat(parts)[:count].tolist() for name, parts in stacked.items()}

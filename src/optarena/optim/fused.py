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

from optarena.optim import compiled, toolchain
from optarena.optim.chunks import ChunkPlan, chunk_size, plan_for, tensor_state_keys
from optarena.optim.execution import eager_update, prepare_step
from optarena.optim.planning import Bucket, BucketPlan
from optarena.transforms.base import local_view


def step_bucket(bucket: Bucket, plan: BucketPlan, chunk_plans: dict[Hashable, ChunkPlan]) -> None:
    """One step of ``bucket`` as ``plan`` says: the eager tensors first, then each compiled graph.

    ``chunk_plans`` belongs to one optimizer: the chunked arguments of each bucket, reused from
    step to step (cleared when the optimizer's state is reloaded).
    """
    if plan.eager:
        part = bucket if len(plan.eager) == len(bucket.params) else bucket.subset(plan.eager)
        eager_update(part, plan.mode)
    for indices in plan.compiled:
        step_compiled(bucket.subset(indices), chunk_plans)


def step_compiled(bucket: Bucket, chunk_plans: dict[Hashable, ChunkPlan]) -> None:
    """The compiled step of a bucket whose every tensor the graph takes (one rank, for a shaped
    chain). What cannot run compiled at step time (state of differing kinds, a failed
    compilation) runs eagerly with the same prepared values."""
    params, states, flat = bucket.params, bucket.states, bucket.flat
    step = prepare_step(bucket)
    prepared, body, fold, maximize, compute_dtype = (
        step.prepared, step.body, step.fold, step.maximize, step.compute_dtype
    )
    state_keys = tensor_state_keys(states)

    def eager_rest(start: int) -> None:
        step.run_eagerly(range(start, len(params)))

    if state_keys is None:
        eager_rest(0)
        return
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
    )
    if key in compiled._broken:
        eager_rest(0)
        return
    fn = compiled.compiled_for(
        key,
        lambda: compiled.make_body(tuple(body), fold, maximize, layout, statics, state_keys, compute_dtype),
        bucket.transforms,
    )
    rows = sum(len(p.scalars) for p in prepared)
    plan = plan_for(chunk_plans, params, states, state_keys, flat, rows)
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
            compiled._broken[key] = f"{type(error).__name__}: {error}"
            toolchain.warn_once(
                f"compiling this chain failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
            )
            eager_rest(start)
            return

"""Group-wide preparations on the fused path: a transform's per-tensor pass, compiled.

Prodigy and D-Adaptation estimate ``d`` from sums over a whole param group, which
:meth:`~optarena.transforms.base.Transform.prepare_group` takes before any bucket steps. Eagerly
that pass is a string of multi-tensor operations with temporaries as large as the parameters;
here the transform's :class:`~optarena.transforms.base.GroupPass` is compiled
(:func:`optarena.optim.compiled.make_group_pass_body`) into loops over each tensor that update
the state in place and reduce the sums alongside, and runs over the tensors the bucket's plan
compiles, in the same chunks as the step (:mod:`optarena.optim.chunks`). The transform still
adds the sums up per tensor, in order, in Python. A pass that is the whole step of its tensors
(:attr:`~optarena.transforms.base.GroupPass.covers`: D-Adaptation Adam's) records them, and the
optimizer leaves them out of the bucket's step (:meth:`CompiledSums.remaining`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace

import torch
from torch import Tensor

from optarena.optim import compiled
from optarena.optim.chunks import ChunkPlan, chunk_size, plan_for
from optarena.optim.planning import Bucket, BucketPlan
from optarena.transforms.base import GroupPass, Prepared, Transform, local_view


class CompiledSums:
    """A bucket's compiled group pass (:data:`~optarena.transforms.base.CompiledSums`): each
    compiled part of its plan, chunked, with the chunk plans of the optimizer."""

    def __init__(self, bucket: Bucket, plan: BucketPlan, chunk_plans: dict[Hashable, ChunkPlan]):
        self.bucket = bucket
        self.parts = plan.compiled
        self.chunk_plans = chunk_plans
        self.stepped: set[int] = set()
        """Positions a pass that is the whole step (:attr:`GroupPass.covers`) has stepped."""

    def __call__(self, transform: Transform, spec: GroupPass) -> dict[int, Tensor]:
        if spec.covers is not None and not spec.covers(self.bucket.transforms):
            return {}
        out: dict[int, Tensor] = {}
        for indices in self.parts:
            out.update(zip(indices, self._part(transform, spec, indices)))
        if spec.covers is not None:
            self.stepped.update(out)
        return out

    def remaining(self, plan: BucketPlan) -> BucketPlan:
        """``plan`` without the tensors already stepped by the group pass."""
        if not self.stepped:
            return plan
        rest = tuple(kept for part in plan.compiled if (kept := tuple(i for i in part if i not in self.stepped)))
        return replace(plan, compiled=rest)

    def _part(self, transform: Transform, spec: GroupPass, indices: Sequence[int]) -> list[Tensor]:
        """The sums of the tensors at ``indices``, in order; fewer (the first ones) when
        compiling failed part of the way: the rest are left to the eager code."""
        params = [self.bucket.params[i] for i in indices]
        states = [self.bucket.states[i] for i in indices]
        first = local_view(params[0])
        names = tuple(spec.scalars)
        static = tuple(sorted(spec.static.items()))
        key = (
            "group pass",
            compiled.structure([transform]),
            spec.math.__qualname__,
            spec.state_keys,
            names,
            static,
            first.dtype,
            first.device.type,
            chunk_size(True),
        )
        if key in compiled._broken:
            return []
        plain = self.bucket.plain  # real tensors of this process: their memory needs no view to find
        plan = plan_for(self.chunk_plans, params, states, spec.state_keys, True, len(names), plain)
        if plan is None:
            return []
        fn = compiled.compiled_for(
            key,
            lambda: compiled.make_group_pass_body(spec.math, names, static),
            [transform],
            compiled.GROUP_PASS_OPTIONS if spec.covers is None else compiled.STEP_PASS_OPTIONS,
        )
        plan.write_scalars([Prepared(dict(spec.scalars))])
        grads = plan.grads([p.grad if plain else local_view(p.grad) for p in params])  # type: ignore[misc, arg-type]  # plans take params with gradients
        rows = []
        for index in range(len(plan.starts)):
            try:
                rows.append(
                    fn(plan.params[index], grads[index], [c[index] for c in plan.states], plan.scalar_chunks[index])
                )
            except Exception as error:  # compilation failed: nothing of this chunk has run
                compiled.give_up(key, "a group pass", error)
                break
        if not rows:
            return []
        if spec.norms:  # taken after the compiled loops, by a compiled pass of their own
            rows = [torch.cat([row, *self._norms(spec, plan, index)], dim=1) for index, row in enumerate(rows)]
        sums = torch.cat(rows)[: min(len(params), len(rows) * len(plan.params[0]))]
        return list(sums.unbind())

    @staticmethod
    def _norms(spec: GroupPass, plan: ChunkPlan, index: int) -> list[Tensor]:
        """``sum |x|`` of each state of ``spec.norms`` over the tensors of chunk ``index``, one
        column each: one compiled loop per tensor that only reads it, at about twice the rate
        of ``torch._foreach_norm(xs, 1)`` on CPU (docs/floors.md). The pass has already written
        the state, so a compilation that fails here takes the norms eagerly instead."""
        first = plan.params[index][0]
        key = ("state l1 norms", first.dtype, first.device.type, chunk_size(True))
        chunks = [plan.states[spec.state_keys.index(name)][index] for name in spec.norms]
        if key not in compiled._broken:
            fn = compiled.compiled_for(key, lambda: compiled.make_group_pass_body(compiled.l1_norm, (), ()))
            params = plan.params[index]  # the loop reads neither parameters nor gradients
            try:
                return [fn(params, params, [chunk], plan.scalar_chunks[index]) for chunk in chunks]
            except Exception as error:
                compiled.give_up(key, "the L1 norms of a group pass", error)
        return [torch.stack(torch._foreach_norm(chunk, 1)).unsqueeze(1).to(first.dtype) for chunk in chunks]

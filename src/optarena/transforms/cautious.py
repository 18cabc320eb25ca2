"""Cautious masking: drop the update's entries that disagree in sign with the gradient."""

from __future__ import annotations

import math

from torch import Tensor

from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps


class CautiousMask(Transform):
    """Cautious optimizers' mask (Liang et al. 2024, https://arxiv.org/abs/2411.16085).

    ``phi = 1[u * g > 0]`` per entry (``g`` the gradient the chain started from, ``u`` the
    update at this point of the chain); output ``u * phi * n / max(nnz(phi), 1)``, with ``n``
    the tensor's number of entries, so the surviving entries are rescaled to keep the
    update's overall size. Where no entry survives the output is zero.

    Placed right after a momentum method's direction (before weight decay, which is not
    masked). Not elementwise: the rescaling counts over the whole tensor. The count is taken
    as the squared norm of the 0/1 mask, so under sharding it is completed across ranks like
    any other whole-tensor norm.
    """

    elementwise = False
    needs_shape = False  # a count over the whole tensor: flattened tensors give the same numbers
    reduces_update = True  # the mask's count first, then the masked update: recomputed in the second pass

    def prepare(self, ctx: StepContext) -> Prepared:
        sizes = [float(math.prod(p.shape)) for p in ctx.originals]
        # k.grads are the gradients as given: under maximize the chain started from their negation
        return Prepared(scalars={"size": ctx.per_tensor(sizes)}, static={"maximize": bool(ctx.group.get("maximize"))})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        agree = (1.0, 0.0, 0.0) if k.static("maximize") else (0.0, 0.0, 1.0)
        mask = ops.select_by_sign(ops.product(updates, k.grads), *agree)
        counts = ops.norm(mask)
        counts = ops.product(counts, counts)
        ops.clamp_(counts, low=1.0)
        scales = ops.materialize(ops.mul_(ops.reciprocal_(counts), k.scalar("size")))
        out = ops.product(updates, mask)
        return ops.mul_(out, scales)

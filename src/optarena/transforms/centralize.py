"""Gradient centralisation: remove each weight tensor's mean over its fan-in dimensions."""

from __future__ import annotations

from torch import Tensor

from optarena.hyperparameters import Flag, Hyper
from optarena.transforms.base import Kernel, Prepared, StepContext, Transform
from optarena.transforms.ops import ListOps, owned

USE_GC = Hyper(True, Flag(), "centralise the gradients of tensors with more than one dimension")
GC_CONV_ONLY = Hyper(False, Flag(), "centralise only tensors with more than three dimensions (convolution kernels)")


class CentralizeGradients(Transform):
    """Gradient centralisation (Yong et al. 2020, https://arxiv.org/abs/2004.01461).

    ``u <- u - mean(u)`` for each tensor with more than one dimension, the mean taken over
    all dimensions but the first (for a linear layer's ``(out, in)`` weight, each output
    row's mean; for a convolution's ``(out, in, h, w)`` kernel, each filter's mean).
    Tensors with one dimension or none (biases, normalisation scales, scalars) pass
    unchanged. With ``gc_conv_only`` only tensors with more than three dimensions are
    centralised, as Ranger's option of that name; ``use_gc=False`` switches it off.

    The mean couples the elements of a tensor, so the update is not elementwise and complex
    parameters are refused. Eagerly, tensors of the same shape are stacked and reduced
    together: a step issues a few operations per distinct shape, not per tensor.
    """

    hyperparameters = {"use_gc": USE_GC, "gc_conv_only": GC_CONV_ONLY}
    elementwise = False

    def prepare(self, ctx: StepContext) -> Prepared:
        active = bool(self.value(ctx, "use_gc"))
        conv_only = bool(self.value(ctx, "gc_conv_only"))
        return Prepared(static={"active": active, "min_dim": 3 if conv_only else 1})

    def apply(self, ops: ListOps, updates: list[Tensor], k: Kernel) -> list[Tensor]:
        if not k.static("active"):
            return updates
        min_dim = k.static("min_dim")
        if owned(updates):
            return ops.centralize_(updates, min_dim)
        # Fresh only when every tensor was centralised: the others still alias the incoming list
        return ops.centralize(updates, min_dim)

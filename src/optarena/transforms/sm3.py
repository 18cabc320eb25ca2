"""SM3's direction: AdaGrad whose second moments are covered by one accumulator per dimension.

Anil, Gupta, Koren & Singer 2019, Memory-Efficient Adaptive Optimization
(https://arxiv.org/abs/1901.11150), SM3-II, with the exponential average and momentum of
``optax.sm3`` and the ``torch-sm3`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from optarena.hyperparameters import NONNEGATIVE, UNIT, Hyper
from optarena.transforms.base import Kernel, Prepared, StepContext
from optarena.transforms.matrix import MatrixTransform, ctx_compiled, kernel

MAX_DIMS = 16
"""Tensors of up to this many dimensions (one accumulator each)."""
COMPILE_MIN_ELEMENTS = 1 << 16
"""Smaller tensors (biases, norms' weights) step eagerly even with ``fused=True``: a compiled
call costs more than the few operations they need."""


def accumulator_shape(shape: torch.Size, dim: int) -> list[int]:
    """The shape of dimension ``dim``'s accumulator: its size there, 1 elsewhere (broadcasts)."""
    return [size if i == dim else 1 for i, size in enumerate(shape)]


class ScaleBySm3(MatrixTransform):
    """``g / sqrt(nu)`` with ``nu`` bounded by one accumulator per dimension (SM3-II).

    For a tensor of ``k >= 1`` dimensions the cover sets are its slices along each dimension:
    ``mu_d`` holds one number per index of dimension ``d`` (rows and columns for a matrix:
    ``m + n`` numbers for ``m x n``; a vector's single cover is the identity, AdaGrad). Each
    step::

        nu = min_d mu_d (broadcast) + g^2          (beta > 0: beta * min_d mu_d + (1 - beta) g^2)
        mu_d = max of nu over every dimension but d
        u = g / sqrt(nu + eps) where nu > 0, else 0
        b = momentum * b + (1 - momentum) * u      (momentum > 0; the output is b, else u)

    A scalar keeps one accumulator (AdaGrad). State: ``accumulator_0 ... accumulator_{k-1}``
    (shaped to broadcast against the tensor, as the ``torch-sm3`` package keeps them) and
    ``momentum_buffer``. Per-tensor work (maxima over dimensions): the chain runs tensor by
    tensor, and when only the learning rate follows, each parameter is updated before the next
    tensor steps (:meth:`step_tensor_into`); with ``fused=True`` each tensor of
    :data:`COMPILE_MIN_ELEMENTS` or more then takes its whole step from one compiled graph
    (:func:`sm3_step`), or its direction from one (:func:`sm3_direction`) in other chains.
    """

    hyperparameters = {
        "momentum": Hyper(0.0, UNIT, "momentum: the weight of the old average of updates (0: none)"),
        "beta": Hyper(0.0, UNIT, "decay of the accumulators (0 sums squared gradients, as the paper)"),
        "eps": Hyper(1e-30, NONNEGATIVE, "added to nu under the root"),
    }
    matrix_state_keys = tuple(f"accumulator_{d}" for d in range(MAX_DIMS)) + ("momentum_buffer",)

    def prepare(self, ctx: StepContext) -> Prepared:
        for p in ctx.originals:
            if p.dim() > MAX_DIMS:
                raise ValueError(
                    f"SM3 keeps one accumulator per dimension, for up to {MAX_DIMS} dimensions; got shape {tuple(p.shape)}"
                )
        static: dict[str, Any] = {key: float(self.value(ctx, key)) for key in self.hyperparameters}
        return Prepared(static={**static, "compiled": ctx_compiled(ctx)})

    def accumulators(self, update: Tensor, state: dict[str, Any]) -> list[Tensor]:
        """The tensor's accumulators (zeros at its first step)."""
        out = []
        for d in range(max(update.dim(), 1)):
            key = f"accumulator_{d}"
            if key not in state:
                state[key] = update.new_zeros(accumulator_shape(update.shape, d) if update.dim() else ())
            out.append(state[key])
        return out

    def step_tensor(self, update: Tensor, state: dict[str, Any], index: int, k: Kernel) -> Tensor:
        if update.numel() == 0:
            return torch.zeros_like(update)
        accumulators = self.accumulators(update, state)
        found = sm3_direction(
            update, k.static("beta"), k.static("eps"), *accumulators, compiled=self.compiles(update, k)
        )
        momentum = k.static("momentum")
        if momentum == 0:
            return advance(found, accumulators, None, momentum)
        buffer: Tensor = state.setdefault("momentum_buffer", torch.zeros_like(update))
        return advance(found, accumulators, buffer, momentum).clone()

    def step_tensor_into(
        self, param: Tensor, update: Tensor, state: dict[str, Any], index: int, k: Kernel, neg_lr: float
    ) -> None:
        """The whole step of one tensor: with ``fused=True`` (tensors of
        :data:`COMPILE_MIN_ELEMENTS` or more) one compiled graph (:func:`sm3_step`) that reads
        the gradient, the parameter and the momentum buffer and writes them back, with no
        temporary as large as the tensor; else the eager operations, without a copy of the
        momentum buffer."""
        if update.numel() == 0:
            return
        accumulators = self.accumulators(update, state)
        beta, eps, momentum = k.static("beta"), k.static("eps"), k.static("momentum")
        buffer = state.setdefault("momentum_buffer", torch.zeros_like(update)) if momentum != 0 else None
        if self.steps_compiled(update, k):
            rate = torch.tensor(neg_lr, dtype=param.dtype, device=param.device)
            # detached: torch.compile keeps a Parameter's shape static (one graph per shape)
            sm3_step(param.detach(), update, rate, buffer, beta, eps, momentum, *accumulators, compiled=True)
            return
        out = advance(sm3_direction(update, beta, eps, *accumulators), accumulators, buffer, momentum)
        param.add_(out, alpha=neg_lr)

    def apply_folded(self, updates: list[Tensor], k: Kernel, neg_lrs: Sequence[float]) -> None:
        """Each tensor's whole step (:meth:`step_tensor_into`), except the vectors and scalars
        that step eagerly: their one accumulator has their own shape, so SM3 on them is
        elementwise, and they step together (:meth:`_step_together`)."""
        together = [i for i, u in enumerate(updates) if self._elementwise(u, k)]
        if len(together) < 2:
            super().apply_folded(updates, k, neg_lrs)
            return
        chosen = set(together)
        for i, (param, update) in enumerate(zip(k.params, updates)):
            if i not in chosen:
                self.step_tensor_into(param, update, k.entries[i], i, k, neg_lrs[i])
        self._step_together(
            [k.params[i] for i in together],
            [updates[i] for i in together],
            [k.entries[i] for i in together],
            k,
            [neg_lrs[i] for i in together],
        )

    def _elementwise(self, update: Tensor, k: Kernel) -> bool:
        """A tensor of at most one dimension that steps eagerly (not one compiled graph)."""
        return update.dim() <= 1 and update.numel() > 0 and not self.steps_compiled(update, k)

    def steps_compiled(self, update: Tensor, k: Kernel) -> bool:
        """Whether this tensor's whole step is one compiled graph (:func:`sm3_step`). 0-d tensors
        stay eager: in torch 2.13 a compiled graph lost its in-place writes to 0-d inputs (the
        parameter and the accumulator kept their values)."""
        return self.compiles(update, k) and update.dim() > 0

    def _step_together(
        self, params: list[Tensor], updates: list[Tensor], states: list[dict[str, Any]], k: Kernel, neg_lrs: list[float]
    ) -> None:
        """The step of vectors and scalars as one flat tensor: the operations of
        :meth:`step_tensor_into` on the same numbers, so the same results, in a few calls
        instead of a dozen per tensor (the transformer set's 108 vectors: docs/floors.md)."""
        beta, eps, momentum = k.static("beta"), k.static("eps"), k.static("momentum")
        accumulators = [self.accumulators(u, state)[0] for u, state in zip(updates, states)]
        flat = torch.cat([u.reshape(-1) for u in updates])
        direction, maximum = sm3_direction(flat, beta, eps, torch.cat([a.reshape(-1) for a in accumulators]))
        torch._foreach_copy_(accumulators, pieces(maximum, accumulators))
        if momentum != 0:
            buffers = [state.setdefault("momentum_buffer", torch.zeros_like(u)) for u, state in zip(updates, states)]
            direction = torch.cat([b.reshape(-1) for b in buffers]).mul_(momentum).add_(direction, alpha=1.0 - momentum)
            torch._foreach_copy_(buffers, pieces(direction, buffers))
        steps = pieces(direction, params)
        for rate in dict.fromkeys(neg_lrs):  # one call per learning rate (one, unless they differ)
            chosen = [i for i, r in enumerate(neg_lrs) if r == rate]
            torch._foreach_add_([params[i] for i in chosen], [steps[i] for i in chosen], alpha=rate)

    @staticmethod
    def compiles(update: Tensor, k: Kernel) -> bool:
        """Whether this tensor's step is compiled: ``fused=True`` and large enough to pay."""
        return bool(k.static("compiled")) and update.numel() >= COMPILE_MIN_ELEMENTS


def pieces(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """``flat`` cut into views shaped as each tensor of ``like``, in order."""
    parts = flat.split([t.numel() for t in like])  # type: ignore[no-untyped-call]  # Tensor.split has no annotations in torch
    return [part.view_as(t) for part, t in zip(parts, like)]


ROW_BLOCK = 8
"""Rows taken together in a compiled maximum over the first dimension (:func:`maximum_over`)."""


def maximum_over(nu: Tensor, dims: list[int]) -> Tensor:
    """``nu.amax(dim=dims, keepdim=True)``; compiled, in blocks of :data:`ROW_BLOCK` rows when
    ``dims`` holds the first dimension. A compiled maximum over the first dimension walks down
    each column (one row's stride between reads, which the hardware does not prefetch); the
    maxima of blocks of rows read a few rows side by side, each in order. Eagerly torch's own
    maximum reads the rows in order already. The same numbers either way (a maximum does not
    depend on the order)."""
    rows = nu.shape[0]
    if not torch.compiler.is_compiling() or 0 not in dims or nu.dim() < 2 or rows % ROW_BLOCK or rows == ROW_BLOCK:
        return nu.amax(dim=dims, keepdim=True)
    blocks = nu.reshape(rows // ROW_BLOCK, ROW_BLOCK, *nu.shape[1:])
    inner = [1] + [d + 1 for d in dims if d != 0]
    return blocks.amax(dim=inner, keepdim=True).amax(dim=0)


@kernel
def sm3_direction(update: Tensor, beta: float, eps: float, *accumulators: Tensor) -> tuple[Tensor, ...]:
    """SM3-II for one tensor: its direction ``g / sqrt(nu + eps)`` (0 where ``nu`` is 0),
    followed by each accumulator's next value, the maxima of ``nu`` over the dimensions other
    than its own. Pure (the caller stores the accumulators), so that a compilation that fails
    half-way can be run again as it is.

    Written to make as few parameter-sized temporaries as the eager step allows (``nu`` and the
    mask of its positive entries); compiled (``fused=True``), it is two passes over the gradient.
    """
    covered = accumulators[0]
    for other in accumulators[1:]:
        covered = torch.minimum(covered, other)
    if beta == 0:
        nu = torch.addcmul(covered, update, update)
    else:
        nu = torch.addcmul(covered * beta, update, update, value=1.0 - beta)
    maxima = []
    for d in range(len(accumulators)):
        others = [i for i in range(update.dim()) if i != d]
        maxima.append(maximum_over(nu, others) if others else nu.clone())
    positive = nu > 0
    direction = nu.add_(eps).rsqrt_().masked_fill_(positive.logical_not_(), 0.0).mul_(update)
    return (direction, *maxima)


def advance(
    found: tuple[Tensor, ...], accumulators: Sequence[Tensor], buffer: Tensor | None, momentum: float
) -> Tensor:
    """The accumulators take the maxima :func:`sm3_direction` found (``found``: the direction,
    then one maximum per accumulator), and the direction its momentum average in ``buffer``
    (in place; ``None`` without momentum). Returns the step's direction."""
    direction, *maxima = found
    for accumulator, maximum in zip(accumulators, maxima):
        accumulator.copy_(maximum)
    if buffer is None:
        return direction
    return buffer.mul_(momentum).add_(direction, alpha=1.0 - momentum)


@kernel
def sm3_step(
    param: Tensor,
    update: Tensor,
    neg_lr: Tensor,
    buffer: Tensor | None,
    beta: float,
    eps: float,
    momentum: float,
    *accumulators: Tensor,
) -> None:
    """One tensor's whole SM3 step, in place: the accumulators take their next values, the
    momentum buffer (when ``momentum > 0``) its average, and ``param += neg_lr * direction``.

    Meant to be compiled (one graph: the accumulators' maxima and one pass that reads the
    gradient, the parameter and the buffer and writes the last two); ``neg_lr`` is a 0-d tensor
    so that a learning-rate schedule does not make a new graph at each step. It writes its
    arguments only as the graph runs: a compilation that fails does so while tracing, before
    anything is written, and the step then runs as it is.
    """
    found = sm3_direction.plain(update, beta, eps, *accumulators)  # type: ignore[attr-defined]
    param.add_(advance(found, accumulators, buffer, momentum) * neg_lr)

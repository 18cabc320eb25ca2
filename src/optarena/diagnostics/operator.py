"""The loss's Hessian as a linear operator on flat parameter vectors.

``H v`` is computed forward-over-reverse with :mod:`torch.func`: the directional derivative
(:func:`~torch.func.jvp`) of the gradient (:func:`~torch.func.grad`) of the loss, with the
parameters passed to the model by :func:`~torch.func.functional_call`. Several vectors go
through one call, batched with :func:`~torch.func.vmap`, in chunks of ``chunk_size`` vectors
so that memory stays bounded (each vector in a chunk carries its own copy of the
activations' tangents).

The model is used as given:

- **mode**: train or eval, whichever it is in. In train mode, batch norm normalises with the
  batch's statistics, as it does when training; its running statistics are not updated.
  Random layers (dropout) draw the same masks at every product, from a fixed seed, so the
  operator is the Hessian of one fixed draw of the loss, symmetric and the same at each call.
- **parameters**: those with ``requires_grad`` are the operator's variables, in
  ``named_parameters()`` order; frozen ones are constants. Neither their values nor their
  ``.grad`` change.
- **buffers**: the model's own, read and never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap

from optarena.checks import whole_number
from optarena.landscape.flat import ParameterLayout

LossFn = Callable[[Any, Any], Tensor]
Batch = Sequence[Any]

ROWS_PER_CALL = 65_536
"""Sample rows (vectors x batch samples) per batched call that :func:`auto_chunk_size` aims for."""
VECTOR_ENTRIES_PER_CALL = 2**25
"""At most this many vector entries per call (128 MB in float32), for models with many parameters."""
MAX_CHUNK = 64


def auto_chunk_size(samples: int, numel: int) -> int:
    """Vectors per batched call: about :data:`ROWS_PER_CALL` sample rows and at most
    :data:`VECTOR_ENTRIES_PER_CALL` vector entries, between 1 and :data:`MAX_CHUNK`."""
    return max(1, min(MAX_CHUNK, ROWS_PER_CALL // max(samples, 1), VECTOR_ENTRIES_PER_CALL // max(numel, 1)))


def split_batch(batch: Batch) -> tuple[tuple[Any, ...], Any]:
    """``(inputs, targets)`` -> positional model inputs and the targets."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be a pair (inputs, targets); inputs may be a tensor or a tuple of tensors")
    inputs, targets = batch
    return (tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)), targets


def trainable_layout(model: nn.Module) -> tuple[ParameterLayout, dict[str, Tensor]]:
    """The layout of the parameters that require gradients, and those parameters (detached)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{type(model).__name__} has no parameters that require gradients: the Hessian is empty")
    kinds = {(p.dtype, p.device) for _, p in named}
    if len(kinds) > 1:
        found = ", ".join(f"{dtype} on {device}" for dtype, device in sorted(kinds, key=str))
        raise ValueError(f"all trainable parameters must share one dtype and device; found {found}")
    dtype = named[0][1].dtype
    if not dtype.is_floating_point:
        raise ValueError(f"the parameters must be floating point, got {dtype}")
    layout = ParameterLayout(tuple(name for name, _ in named), tuple(p.shape for _, p in named))
    return layout, {name: p.detach() for name, p in named}


@contextmanager
def running_statistics_frozen(model: nn.Module) -> Iterator[None]:
    """Batch-norm layers in train mode normalise with batch statistics and update nothing.

    For the duration, ``track_running_stats`` is off on the batch-norm layers that are
    training: their forward is the same function of the batch, without the in-place update
    of the running statistics (which torch.func transforms refuse, and which would change
    the model).
    """
    switched = [
        module
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.training and module.track_running_stats
    ]
    for module in switched:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in switched:
            module.track_running_stats = True


@contextmanager
def seeded_randomness(seed: int, device: torch.device) -> Iterator[None]:
    """torch's random state set from ``seed`` for the duration (CPU and ``device``), restored after."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.default_generators[devices[0]].manual_seed(seed)
        yield


def _scalar(loss: Any) -> Tensor:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a single number (a mean loss), got {shape}")
    return loss.reshape(())


class HessianOperator:
    """``v -> H v`` for the Hessian ``H`` of ``loss_fn(model(inputs), targets)`` at the model's parameters.

    Args:
        model: the network, in train or eval mode as it should be measured.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar loss; must work under
            :mod:`torch.func` transforms (``torch.nn.functional`` losses do).
        batch: ``(inputs, targets)``; ``inputs`` may be a tuple of positional inputs.
        chunk_size: vectors per batched call (bounds the memory); ``None`` sizes it with
            :func:`auto_chunk_size`.
        seed: seeds the random layers, the same way at every product.

    Vectors are flat, of length :attr:`numel`, in the parameters' dtype and device; the
    operator applies to one vector ``(numel,)`` or a batch ``(m, numel)``. It shares the
    model's parameter tensors (no copy), so after an in-place optimizer step it is the Hessian
    at the new point; replacing a parameter object needs a new operator.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batch: Batch,
        *,
        chunk_size: int | None = None,
        seed: int = 0,
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        self.inputs, self.targets = split_batch(batch)
        self.layout, self._point = trainable_layout(model)
        trainable = set(self.layout.names)
        self._frozen = {name: p.detach() for name, p in model.named_parameters() if name not in trainable}
        self._buffers = dict(model.named_buffers())
        first = self.inputs[0] if self.inputs else None
        samples = first.shape[0] if isinstance(first, Tensor) and first.dim() > 0 else 1
        self.chunk_size = (
            auto_chunk_size(samples, self.numel)
            if chunk_size is None
            else whole_number("chunk_size", chunk_size, none_means="automatic")
        )
        self.seed = int(seed)
        self.products = 0
        """Hessian-vector products computed so far."""
        self._batched_product = vmap(self._product, randomness="same")

    @property
    def numel(self) -> int:
        """The number of variables (trainable parameter entries)."""
        return self.layout.numel

    @property
    def dtype(self) -> torch.dtype:
        return self._point[self.layout.names[0]].dtype

    @property
    def device(self) -> torch.device:
        return self._point[self.layout.names[0]].device

    def _loss_at(self, parameters: dict[str, Tensor]) -> Tensor:
        outputs = functional_call(self.model, (parameters, self._frozen, self._buffers), self.inputs)
        return _scalar(self.loss_fn(outputs, self.targets))

    def _product(self, tangent: dict[str, Tensor]) -> dict[str, Tensor]:
        return jvp(grad(self._loss_at), (self._point,), (tangent,))[1]

    @contextmanager
    def _as_given(self) -> Iterator[None]:
        with running_statistics_frozen(self.model), seeded_randomness(self.seed, self.device):
            yield

    def __call__(self, vectors: Tensor) -> Tensor:
        """``H v`` for one vector ``(numel,)`` or for each row of ``(m, numel)``."""
        if not isinstance(vectors, Tensor):
            raise TypeError(f"vectors must be a tensor, got {type(vectors).__name__}")
        single = vectors.dim() == 1
        rows = vectors.unsqueeze(0) if single else vectors
        if rows.dim() != 2 or rows.shape[1] != self.numel:
            raise ValueError(
                f"vectors must be (numel,) or (m, numel) with numel = {self.numel} (the trainable parameter "
                f"count), got shape {tuple(vectors.shape)}"
            )
        rows = rows.to(dtype=self.dtype, device=self.device)
        out = torch.empty_like(rows)
        with self._as_given():
            for first in range(0, rows.shape[0], self.chunk_size):
                chunk = rows[first : first + self.chunk_size]
                if chunk.shape[0] == 1:  # one vector: the same numbers without vmap's overhead
                    product = self._product(self.layout.unflatten(chunk[0]))
                else:
                    product = self._batched_product(self.layout.unflatten(chunk))
                out[first : first + chunk.shape[0]] = torch.cat(
                    [product[name].reshape(chunk.shape[0], -1) for name in self.layout.names], dim=1
                )
        self.products += rows.shape[0]
        return out[0] if single else out


def hessian_vector_product(
    model: nn.Module, loss_fn: LossFn, batch: Batch, vectors: Tensor, *, chunk_size: int | None = None
) -> Tensor:
    """``H v`` for flat vectors ``(numel,)`` or ``(m, numel)`` over the trainable parameters
    (``named_parameters()`` order); see :class:`HessianOperator`."""
    return HessianOperator(model, loss_fn, batch, chunk_size=chunk_size)(vectors)

"""The loss at many points ``center + coords @ directions``, evaluated as a batch of networks.

For a chunk of points, the parameter vectors are built with one matrix product, cut into the
model's parameter shapes (views, no copies), and the model runs once for the whole chunk:
:func:`torch.func.vmap` over :func:`torch.func.functional_call`, on one fixed evaluation
batch. Memory grows with ``chunk_size`` (the parameters and activations of that many
networks at a time), not with the number of points; by default the chunk is sized from the
evaluation batch and the model (:func:`auto_chunk_size`).

:func:`evaluate_points_loop` computes the same numbers one network at a time; it is the
reference the batched evaluation is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from optarena.checks import whole_number
from optarena.landscape.flat import ParameterLayout

ROWS_PER_CALL = 32_768
"""Sample rows (networks x evaluation samples) per vmap call that :func:`auto_chunk_size` aims
for: on CPU, fewer leave per-call overhead visible, more spill the activations out of cache
(measured with ``benchmarks/landscape_speed.py``)."""
PARAMETER_ENTRIES_PER_CALL = 2**26
"""At most this many parameter entries per call (256 MB in float32): large models get small chunks."""
MAX_CHUNK = 256

LossFn = Callable[[Any, Any], Tensor]
Batch = Sequence[Any]


def _split_batch(batch: Batch) -> tuple[tuple[Any, ...], Any]:
    """``(inputs, targets)`` -> positional model inputs and the targets."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError("batch must be a pair (inputs, targets); inputs may be a tensor or a tuple of tensors")
    inputs, targets = batch
    return (tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)), targets


def _check_points(layout: ParameterLayout, center: Tensor, directions: Tensor, coords: Tensor) -> Tensor:
    layout.check(center, "center")
    if center.dim() != 1:
        raise ValueError(f"center must be one vector, got shape {tuple(center.shape)}")
    if directions.dim() != 2:
        raise ValueError(f"directions must be a (k, numel) matrix, got shape {tuple(directions.shape)}")
    layout.check(directions, "directions")
    coords = torch.as_tensor(coords, dtype=center.dtype, device=center.device)
    if coords.dim() != 2 or coords.shape[1] != directions.shape[0]:
        raise ValueError(
            f"coords must be (points, {directions.shape[0]}): one coordinate per direction; "
            f"got shape {tuple(coords.shape)}"
        )
    return coords


def auto_chunk_size(samples: int, numel: int) -> int:
    """Networks per call: about :data:`ROWS_PER_CALL` sample rows, at most
    :data:`PARAMETER_ENTRIES_PER_CALL` parameter entries, between 1 and :data:`MAX_CHUNK`."""
    return max(1, min(MAX_CHUNK, ROWS_PER_CALL // max(samples, 1), PARAMETER_ENTRIES_PER_CALL // max(numel, 1)))


def _chunk_size(chunk_size: int | None, inputs: tuple[Any, ...], layout: ParameterLayout) -> int:
    if chunk_size is None:
        first = inputs[0] if inputs else None
        samples = first.shape[0] if isinstance(first, Tensor) and first.dim() > 0 else 1
        return auto_chunk_size(samples, layout.numel)
    return whole_number("chunk_size", chunk_size, none_means="automatic")


@contextmanager
def _evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, batch-norm running statistics) and no autograd, restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _scalar(loss: Tensor) -> Tensor:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a single number (a mean loss), got {shape}")
    return loss.reshape(())


LINEAR_IN_PARAMETERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Modules whose output, for fixed inputs, is linear in their parameters (weight and bias together)."""


def leading_linear_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(first, rest)`` when ``model`` is an ``nn.Sequential`` that starts with a module linear in
    its parameters (Linear, Conv) and has parameters after it; otherwise None."""
    if not isinstance(model, nn.Sequential) or len(model) < 2 or type(model[0]) not in LINEAR_IN_PARAMETERS:
        return None
    first, rest = model[0], nn.Sequential(*list(model)[1:])
    if not list(rest.parameters()) or list(rest.buffers()) != list(model.buffers()):
        return None
    return first, rest


def evaluate_points(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    center: Tensor,
    directions: Tensor,
    coords: Tensor,
    *,
    chunk_size: int | None = None,
    decompose: bool = True,
) -> Tensor:
    """``loss_fn(model_theta(inputs), targets)`` at ``theta = center + coords[i] @ directions``.

    Args:
        model: gives the architecture and the buffers (kept fixed); its parameters are not
            used or changed. Evaluated in eval mode.
        loss_fn: ``loss_fn(outputs, targets)`` returning a mean loss; must work under
            :func:`torch.func.vmap` (``torch.nn.functional`` losses do).
        batch: the fixed evaluation batch ``(inputs, targets)``.
        center: flat parameter vector ``(numel,)``.
        directions: ``(k, numel)``.
        coords: ``(points, k)``.
        chunk_size: networks evaluated per vmap call (bounds the memory); ``None`` sizes it
            with :func:`auto_chunk_size`.
        decompose: when the model is an ``nn.Sequential`` starting with a Linear or Conv
            layer, evaluate that layer once per direction instead of once per point: on the
            fixed batch its output is linear in its parameters, so at
            ``center + sum_k c_k d_k`` it equals ``f(center) + sum_k c_k f(d_k)``. The first
            layer usually does most of the arithmetic (87% for the digits MLP); the rest of
            the network still runs per point. Off, every layer runs per point.

    Returns the losses, shape ``(points,)``, in ``center``'s dtype.
    """
    layout = ParameterLayout.of(model)
    coords = _check_points(layout, center, directions, coords)
    inputs, targets = _split_batch(batch)
    chunk_size = _chunk_size(chunk_size, inputs, layout)
    split = leading_linear_split(model) if decompose and len(inputs) == 1 else None
    if split is not None:
        return _evaluate_decomposed(model, split, loss_fn, inputs[0], targets, center, directions, coords, chunk_size)
    buffers = dict(model.named_buffers())

    def loss_of(parameters: dict[str, Tensor]) -> Tensor:
        outputs = functional_call(model, (parameters, buffers), inputs)
        return _scalar(loss_fn(outputs, targets))

    batched_loss = vmap(loss_of)
    losses = torch.empty(coords.shape[0], dtype=center.dtype, device=center.device)
    with _evaluation_mode(model):
        for start in range(0, coords.shape[0], chunk_size):
            chunk = coords[start : start + chunk_size]
            thetas = torch.addmm(center.unsqueeze(0), chunk, directions)
            losses[start : start + chunk.shape[0]] = batched_loss(layout.unflatten(thetas))
    return losses


def _evaluate_decomposed(
    model: nn.Module,
    split: tuple[nn.Module, nn.Module],
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Any,
    center: Tensor,
    directions: Tensor,
    coords: Tensor,
    chunk_size: int,
) -> Tensor:
    """:func:`evaluate_points` with the leading linear layer evaluated once per direction."""
    first, rest = split
    first_layout, rest_layout = ParameterLayout.of(first), ParameterLayout.of(rest)
    cut = first_layout.numel
    rest_buffers = dict(rest.named_buffers())

    def rest_loss(parameters: dict[str, Tensor], hidden: Tensor) -> Tensor:
        return _scalar(loss_fn(functional_call(rest, (parameters, rest_buffers), (hidden,)), targets))

    batched_rest = vmap(rest_loss)
    losses = torch.empty(coords.shape[0], dtype=center.dtype, device=center.device)
    with _evaluation_mode(model):
        at_center = functional_call(first, first_layout.unflatten(center[:cut]), (inputs,))
        along = torch.stack([functional_call(first, first_layout.unflatten(d[:cut]), (inputs,)) for d in directions])
        flat_along = along.reshape(along.shape[0], -1)
        for start in range(0, coords.shape[0], chunk_size):
            chunk = coords[start : start + chunk_size]
            hidden = torch.addmm(at_center.reshape(1, -1), chunk.to(flat_along.dtype), flat_along)
            hidden = hidden.reshape(chunk.shape[0], *at_center.shape)
            thetas = torch.addmm(center[cut:].unsqueeze(0), chunk, directions[:, cut:])
            losses[start : start + chunk.shape[0]] = batched_rest(rest_layout.unflatten(thetas), hidden)
    return losses


def evaluate_points_loop(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    center: Tensor,
    directions: Tensor,
    coords: Tensor,
) -> Tensor:
    """The same losses as :func:`evaluate_points`, one network at a time (the reference)."""
    layout = ParameterLayout.of(model)
    coords = _check_points(layout, center, directions, coords)
    inputs, targets = _split_batch(batch)
    buffers = dict(model.named_buffers())
    losses = torch.empty(coords.shape[0], dtype=center.dtype, device=center.device)
    with _evaluation_mode(model):
        for i in range(coords.shape[0]):
            theta = torch.addmv(center, directions.T, coords[i])
            outputs = functional_call(model, (layout.unflatten(theta), buffers), inputs)
            losses[i] = _scalar(loss_fn(outputs, targets))
    return losses


def loss_at(model: nn.Module, loss_fn: LossFn, batch: Batch, vector: Tensor) -> float:
    """The loss of the model with the flat parameters ``vector`` on ``batch`` (eval mode)."""
    layout = ParameterLayout.of(model)
    layout.check(vector, "vector")
    inputs, targets = _split_batch(batch)
    with _evaluation_mode(model):
        outputs = functional_call(model, (layout.unflatten(vector), dict(model.named_buffers())), inputs)
        return float(_scalar(loss_fn(outputs, targets)))

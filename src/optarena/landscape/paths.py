"""Optimizer paths: checkpoints recorded while training, every run from one initial point.

:func:`train_paths` trains a copy of the same initial model with each optimizer, on the same
sequence of mini-batches, and records the flat parameter vector every ``record_every`` steps
(and at steps 0 and ``steps``). The runs differ only in the optimizer, so their paths can be
drawn on one plane (:mod:`optarena.landscape.projection`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from optarena.checks import whole_numbers
from optarena.landscape.evaluate import LossFn
from optarena.landscape.flat import parameters_vector
from optarena.registry import create


@dataclass
class Trajectory:
    """One run: the optimizer, its settings, and its checkpoints."""

    name: str
    hyperparameters: dict[str, Any]
    steps: list[int] = field(default_factory=list)
    points: list[Tensor] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    """The mini-batch loss at each recorded step (before that step's update); at the last
    step, the loss of the final parameters on the last mini-batch."""

    def record(self, step: int, model: nn.Module, loss: float) -> None:
        self.steps.append(step)
        self.points.append(parameters_vector(model))
        self.losses.append(float(loss))

    def matrix(self) -> Tensor:
        """The checkpoints as a ``(checkpoints, numel)`` matrix."""
        return torch.stack(self.points)


def _minibatch_order(samples: int, batch_size: int, steps: int, seed: int) -> list[Tensor]:
    """Index sets of ``steps`` mini-batches: epochs of a seeded permutation."""
    generator = torch.Generator().manual_seed(seed)
    order: list[Tensor] = []
    while len(order) < steps:
        permutation = torch.randperm(samples, generator=generator)
        order.extend(permutation[i : i + batch_size] for i in range(0, samples - batch_size + 1, batch_size))
    return order[:steps]


def train_paths(
    model: nn.Module,
    loss_fn: LossFn,
    data: tuple[Tensor, Tensor],
    optimizers: Sequence[str],
    *,
    steps: int,
    batch_size: int,
    record_every: int,
    hyperparameters: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
) -> list[Trajectory]:
    """Train a copy of ``model`` with each optimizer (registry names) and record the paths.

    Args:
        model: the common initial point; not modified.
        loss_fn: ``loss_fn(outputs, targets)``.
        data: ``(inputs, targets)`` to draw mini-batches from.
        optimizers: registry names, e.g. ``["sgd", "adam"]``.
        steps: optimizer steps per run.
        batch_size: samples per mini-batch (at most the number of samples).
        record_every: record a checkpoint every this many steps.
        hyperparameters: per-name keyword arguments for :func:`optarena.create`.
        seed: fixes the mini-batch order, the same for every run.
    """
    inputs, targets = data
    whole_numbers(steps=steps, batch_size=batch_size, record_every=record_every)
    if batch_size > len(inputs):
        raise ValueError(f"batch_size must be at most the number of samples ({len(inputs)}), got {batch_size}")
    if not optimizers:
        raise ValueError("train_paths needs at least one optimizer name")
    settings = dict(hyperparameters or {})
    order = _minibatch_order(len(inputs), batch_size, steps, seed)
    runs = []
    for name in optimizers:
        trained = copy.deepcopy(model)
        trained.train()
        hp = dict(settings.get(name, {}))
        optimizer = create(name, trained.parameters(), **hp)
        run = Trajectory(name, hp)
        for step, index in enumerate(order):
            loss = loss_fn(trained(inputs[index]), targets[index])
            if step % record_every == 0:
                run.record(step, trained, loss.item())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            final = loss_fn(trained(inputs[order[-1]]), targets[order[-1]]).item()
        run.record(steps, trained, final)
        runs.append(run)
    return runs

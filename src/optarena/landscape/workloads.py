"""The workloads the ``landscape`` command can draw, by name.

A workload here is only what a landscape needs: a seeded model, a loss, training data, a
training budget and starting learning rates. :func:`get_workload` is the single place that
resolves a name, so it can later defer to the arena's workloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Workload:
    """A model, its loss and its data, with a short training budget for drawing paths."""

    name: str
    description: str
    make_model: Callable[[int], nn.Module]
    """Seed -> a freshly initialised model."""
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    data: tuple[Tensor, Tensor]
    steps: int
    batch_size: int
    learning_rates: Mapping[str, float] = field(default_factory=dict)
    """Learning rates that replace the registry default for this workload."""

    def evaluation_batch(self, size: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
        """The fixed batch the landscape is evaluated on: all the data, or ``size`` samples of it."""
        inputs, targets = self.data
        if size is None or size >= len(inputs):
            return inputs, targets
        if size < 1:
            raise ValueError(f"the evaluation batch needs at least 1 sample, got {size}")
        index = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed))[:size]
        return inputs[index], targets[index]


LEARNING_RATES: dict[str, float] = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.05}
"""Learning rates that replace the registry default when drawing paths (SGD's 1e-3 barely moves)."""


def get_workload(name: str, data_dir: str | None = None) -> Workload:
    """The arena workload ``name`` (or ``package.module:factory``) as a landscape needs it.

    Its seed-0 run must expose ``loss_fn(outputs, targets)`` and ``train_data`` (inputs,
    targets), as the arena's classifiers do; a ValueError names what is missing.
    """
    from optarena.arena.workloads import get_workload as arena_workload

    arena = arena_workload(name, data_dir=data_dir)
    probe = arena.setup(0)
    missing = [attribute for attribute in ("loss_fn", "train_data") if not hasattr(probe, attribute)]
    if missing:
        raise ValueError(
            f"workload {arena.name!r} cannot be drawn: its runs lack {' and '.join(missing)} "
            f"(a loss function and the training tensors); supervised workloads that have them: "
            f"{', '.join(drawable_workloads())}"
        )

    first_model = probe.model
    return Workload(
        name=arena.name,
        description=arena.description,
        make_model=lambda seed: _fresh(first_model) if seed == 0 else arena.setup(seed).model,
        loss_fn=probe.loss_fn,
        data=tuple(probe.train_data),
        steps=arena.steps,
        batch_size=int(getattr(arena, "batch_size", 64)),
        learning_rates=LEARNING_RATES,
    )


def _fresh(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def drawable_workloads() -> list[str]:
    """Built-in workloads whose runs expose a loss function and training tensors."""
    from optarena.arena.workloads import available_workloads

    return [w.name for w in available_workloads() if w.drawable]

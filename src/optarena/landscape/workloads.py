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

from optarena.hyperparameters import close_matches


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


def _digits_mlp() -> Workload:
    from optarena.data.digits import load_digits_tensors

    def make_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))

    return Workload(
        name="digits-mlp",
        description="8x8 handwritten digits (the training split), a 64-32-10 tanh MLP, cross-entropy",
        make_model=make_model,
        loss_fn=nn.functional.cross_entropy,
        data=load_digits_tensors()[:2],
        steps=1000,
        batch_size=64,
        learning_rates={"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.05},
    )


WORKLOADS: dict[str, Callable[[], Workload]] = {"digits-mlp": _digits_mlp}


def get_workload(name: str) -> Workload:
    """The workload called ``name``; a ValueError names the close matches and the choices."""
    key = name.strip().lower()
    if key not in WORKLOADS:
        hints = close_matches(key, list(WORKLOADS))
        hint = f" Did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
        raise ValueError(f"Unknown workload {name!r}.{hint} Available: {', '.join(WORKLOADS)}.")
    return WORKLOADS[key]()

"""``digits-mlp`` and ``digits-cnn``: the 8x8 handwritten digits that ship with optarena.

1,437 training and 360 held-out images (a fixed split, the same for every seed), ten
classes. Small enough that a run takes about a second on one CPU thread, hard enough that
a poor learning rate misses the target.
"""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor, nn

from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    Budget,
    BuiltinWorkload,
    ClassifierRun,
    seeded_model,
)
from optarena.data.digits import load_digits_tensors


@lru_cache(maxsize=2)
def _digits(flatten: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return load_digits_tensors(flatten=flatten)


class DigitsMLP(BuiltinWorkload):
    """A ReLU network with one hidden layer of 64 units on the flattened digits."""

    name = "digits-mlp"
    description = "8x8 digits (shipped), MLP 64-64-10: the quick everyday race"
    target = Target("test_accuracy", 0.95, "max")
    budget = Budget(steps=400, eval_every=20, batch_size=64)
    quick_budget = Budget(steps=200, eval_every=20, batch_size=64)
    drawable = True

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        model = seeded_model(seed, lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)))
        return ClassifierRun(model, _digits(True), self.batch_size, seed)


class DigitsCNN(BuiltinWorkload):
    """Two 3x3 convolutions (16 and 32 channels), a 2x2 max-pool and a linear classifier."""

    name = "digits-cnn"
    description = "8x8 digits (shipped), a two-layer CNN: convolutions' curvature"
    target = Target("test_accuracy", 0.97, "max")
    budget = Budget(steps=400, eval_every=20, batch_size=64)
    quick_budget = Budget(steps=200, eval_every=20, batch_size=64)
    drawable = True

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        def build() -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * 4 * 4, 10),
            )

        return ClassifierRun(seeded_model(seed, build), _digits(False), self.batch_size, seed)

"""``mnist1d-mlp`` and ``mnist1d-cnn``: MNIST-1D (Greydanus 2020), generated locally.

4,000 training and 1,000 held-out signals of 40 points, ten classes
(:mod:`optarena.data.mnist1d`). Unlike the 8x8 digits, where most tuned optimizers tie,
the models here stay well below perfect accuracy within a CPU budget, so the time to a
target separates optimizers. ``data_seed`` regenerates a different data set of the same
kind; with ``width`` and ``depth`` (or ``channels``) it makes the held-out variants
(:mod:`optarena.arena.workloads.variants`).
"""

from __future__ import annotations

from torch import nn

from optarena.arena.workload import Target
from optarena.arena.workloads.base import Budget, BuiltinWorkload, ClassifierRun, seeded_model
from optarena.checks import whole_number, whole_numbers
from optarena.data.mnist1d import DEFAULT_SEED, LENGTH, NUM_CLASSES, mnist1d_tensors


class _Mnist1D(BuiltinWorkload):
    budget = Budget(steps=1000, eval_every=50, batch_size=128)
    quick_budget = Budget(steps=400, eval_every=50, batch_size=128)
    version = "1"

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        data_seed: int = DEFAULT_SEED,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        self.data_seed = whole_number("data_seed", data_seed, 0)


class Mnist1DMLP(_Mnist1D):
    """A ReLU network with ``depth`` hidden layers of ``width`` units."""

    name = "mnist1d-mlp"
    description = "MNIST-1D (generated), MLP 40-100-100-10"
    target = Target("test_accuracy", 0.6, "max")
    drawable = True

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        data_seed: int = DEFAULT_SEED,
        width: int = 100,
        depth: int = 2,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size, data_seed=data_seed)
        whole_numbers(width=width, depth=depth)
        self.width, self.depth = width, depth

    def build(self) -> nn.Module:
        layers: list[nn.Module] = []
        features = LENGTH
        for _ in range(self.depth):
            layers += [nn.Linear(features, self.width), nn.ReLU()]
            features = self.width
        return nn.Sequential(*layers, nn.Linear(features, NUM_CLASSES))

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        return ClassifierRun(seeded_model(seed, self.build), mnist1d_tensors(self.data_seed), self.batch_size, seed)


class Mnist1DCNN(_Mnist1D):
    """Three 1-D convolutions of stride 2 (``channels`` each), as in the MNIST-1D paper, and a linear read-out."""

    name = "mnist1d-cnn"
    description = "MNIST-1D (generated), three stride-2 1-D convolutions"
    target = Target("test_accuracy", 0.8, "max")
    drawable = True

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        data_seed: int = DEFAULT_SEED,
        channels: int = 25,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size, data_seed=data_seed)
        self.channels = whole_number("channels", channels)

    def build(self) -> nn.Module:
        c = self.channels
        return nn.Sequential(
            nn.Conv1d(1, c, 5, stride=2, padding=1),
            nn.ReLU(),  # 40 -> 19
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),  # 19 -> 10
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),  # 10 -> 5
            nn.Flatten(),
            nn.Linear(c * 5, NUM_CLASSES),
        )

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        data = mnist1d_tensors(self.data_seed, channels=True)
        return ClassifierRun(seeded_model(seed, self.build), data, self.batch_size, seed)

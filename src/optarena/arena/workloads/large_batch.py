"""``large-batch``: a teacher network's labels learnt with mini-batches of 4,096 examples.

Inputs are standard normal vectors; a fixed random two-layer tanh network (the teacher)
labels each with the class of its largest output. The student is a wider ReLU network
trained with batches of 4,096 for a few hundred steps, the regime where a single global
learning rate must suit layers whose weight and gradient norms differ a lot, and where
layer-wise trust ratios (LARS, https://arxiv.org/abs/1708.03888; LAMB,
https://arxiv.org/abs/1904.00962) are meant to help. The data are fixed (the same for
every seed); seeds change the student's initial weights and the batch order.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    DATA_STREAM,
    Budget,
    BuiltinWorkload,
    ClassifierRun,
    generator,
    seeded_model,
)
from optarena.checks import whole_number, whole_numbers


@lru_cache(maxsize=2)
def teacher_data(
    features: int, classes: int, teacher_width: int, train: int, test: int, data_seed: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` labelled by a random tanh teacher network."""
    g = generator(data_seed, DATA_STREAM)
    hidden = torch.randn(features, teacher_width, generator=g) * (2.0 / features) ** 0.5
    readout = torch.randn(teacher_width, classes, generator=g) / teacher_width**0.5
    x = torch.randn(train + test, features, generator=g)
    y = (torch.tanh(x @ hidden) @ readout).argmax(dim=1)
    return x[:train], y[:train], x[train:], y[train:]


class LargeBatch(BuiltinWorkload):
    """A student MLP learns a random teacher's classes with batches of 4,096."""

    name = "large-batch"
    description = "a random teacher's labels, batch 4096, a few hundred steps: LAMB and LARS's case"
    target = Target("test_accuracy", 0.84, "max")
    budget = Budget(steps=300, eval_every=10, batch_size=4096)
    quick_budget = Budget(steps=150, eval_every=10, batch_size=4096)
    drawable = True

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        features: int = 16,
        classes: int = 10,
        width: int = 256,
        teacher_width: int = 32,
        train_examples: int = 131_072,
        test_examples: int = 8_192,
        data_seed: int = 0,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        whole_numbers(
            features=features,
            width=width,
            teacher_width=teacher_width,
            train_examples=train_examples,
            test_examples=test_examples,
        )
        whole_number("classes", classes, 2)
        whole_number("data_seed", data_seed, 0)
        if self.batch_size > train_examples:
            raise ValueError(f"batch_size ({self.batch_size}) exceeds train_examples ({train_examples})")
        self.features, self.classes, self.width, self.teacher_width = features, classes, width, teacher_width
        self.train_examples, self.test_examples, self.data_seed = train_examples, test_examples, data_seed

    def data(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The fixed training and held-out examples with the teacher's labels."""
        return teacher_data(
            self.features, self.classes, self.teacher_width, self.train_examples, self.test_examples, self.data_seed
        )

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        def build() -> nn.Module:
            return nn.Sequential(
                nn.Linear(self.features, self.width),
                nn.ReLU(),
                nn.Linear(self.width, self.width),
                nn.ReLU(),
                nn.Linear(self.width, self.classes),
            )

        return ClassifierRun(
            seeded_model(seed, build), self.data(), self.batch_size, seed, eval_chunk=self.test_examples
        )

"""Tiny workloads for the arena's tests, given to races as ``toy_workloads:factory``."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from optarena.arena.workload import Target


def _data(n: int, features: int, classes: int | None, seed: int = 1234):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes or 1, generator=g)
    scores = x @ w
    y = scores.argmax(dim=1) if classes else scores[:, 0] + 0.1 * torch.randn(n, generator=g)
    split = n * 3 // 4
    return x[:split], y[:split], x[split:], y[split:]


class ToyRun:
    def __init__(self, workload: ToyWorkload, seed: int):
        self.workload = workload
        g = torch.Generator().manual_seed(seed)
        out = workload.classes or 1
        self.model = nn.Sequential(nn.Linear(workload.features, 16), nn.Tanh(), nn.Linear(16, out))
        with torch.no_grad():
            for p in self.model.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.x, self.y, self.x_test, self.y_test = _data(256, workload.features, workload.classes)
        self.order = torch.Generator().manual_seed(seed + 10_000)

    def _loss(self, x, y):
        return self.loss_fn(self.model(x), y)

    def loss_fn(self, out, y):
        """The training loss of the model's outputs (with ``train_data``: what the sharpness needs)."""
        if self.workload.classes:
            return F.cross_entropy(out, y)
        return F.mse_loss(out[:, 0], y)

    @property
    def train_data(self):
        return self.x, self.y

    def train_loss(self, step: int):
        if self.workload.delay:
            time.sleep(self.workload.delay)
        batch = torch.randint(0, len(self.x), (32,), generator=self.order)
        loss = self._loss(self.x[batch], self.y[batch])
        if self.workload.explode_at is not None and step >= self.workload.explode_at:
            loss = loss * float("inf")
        return loss

    def evaluate(self):
        with torch.no_grad():
            metrics = {"test_loss": float(self._loss(self.x_test, self.y_test))}
            if self.workload.classes:
                metrics["test_accuracy"] = float((self.model(self.x_test).argmax(1) == self.y_test).float().mean())
        if self.workload.drop_target:
            metrics.pop(self.workload.target.metric)
        return metrics


class ToyWorkload:
    def __init__(
        self, name, target, steps=30, eval_every=10, classes=None, delay=0.0, drop_target=False, explode_at=None
    ):
        self.name = name
        self.description = f"toy {'classification' if classes else 'regression'} for tests"
        self.target = target
        self.steps, self.eval_every, self.batch_size = steps, eval_every, 32
        self.features, self.classes, self.delay, self.drop_target = 6, classes, delay, drop_target
        self.explode_at = explode_at

    def setup(self, seed, *, sparse=False):
        return ToyRun(self, seed)


def regression(steps: int = 30, quick: bool = False):
    """Least squares; the target is a low test loss."""
    return ToyWorkload("toy-regression", Target("test_loss", 0.5, "min"), steps=10 if quick else steps)


def classifier(steps: int = 30, quick: bool = False):
    """Three classes; the target is a high test accuracy."""
    return ToyWorkload(
        "toy-classifier", Target("test_accuracy", 0.8, "max"), steps=12 if quick else steps, eval_every=5, classes=3
    )


def slow_regression(delay: float = 0.01):
    """Least squares that sleeps each step: slow enough to interrupt mid-race, same numbers."""
    return ToyWorkload("toy-slow", Target("test_loss", 0.5, "min"), steps=30, delay=delay)


def missing_metric():
    """Its evaluate() forgets the target metric."""
    return ToyWorkload("toy-missing", Target("test_loss", 0.5, "min"), steps=5, eval_every=5, drop_target=True)


def exploding():
    """Its training loss becomes infinite at step 3, whatever the optimizer does."""
    return ToyWorkload("toy-exploding", Target("test_loss", 0.5, "min"), steps=10, eval_every=5, explode_at=3)

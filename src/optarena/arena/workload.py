"""The workload protocol: what the arena needs from a problem to race optimizers on it.

A workload is a recipe; :meth:`Workload.setup` turns it into a :class:`Trainable` for one
seed: a freshly initialised model and its data, deterministic given the seed. The arena
then, for each step ``t`` in ``range(workload.steps)``:

1. ``optimizer.zero_grad()``; ``loss = trainable.train_loss(t)``; ``loss.backward()``;
   ``optimizer.step()`` (a non-finite loss marks the run as diverged);
2. every ``workload.eval_every`` steps and after the last, ``trainable.evaluate()``.

Write your own as any object with these attributes (a class instance, a dataclass) and
pass ``--workload package.module:factory``, where ``factory()`` returns the workload::

    class MyWorkload:
        name = "my-regression"
        description = "least squares on my data"
        target = Target("test_loss", 0.05, "min")
        steps, eval_every, batch_size = 500, 50, 128

        def setup(self, seed, *, sparse=False):
            return MyTrainable(seed)   # has .model, .train_loss(step), .evaluate()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor, nn

MODES = ("min", "max")


@dataclass(frozen=True)
class Target:
    """The metric a workload is judged by, the value that counts as reaching it, and its direction."""

    metric: str
    value: float
    mode: str = "max"
    """``"max"`` when higher is better (accuracy), ``"min"`` when lower is (a loss)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Target.mode must be one of {MODES}, got {self.mode!r}")

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value >= self.value if self.mode == "max" else value <= self.value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.mode == "max" else a < b


@runtime_checkable
class Trainable(Protocol):
    """One seed's model and data."""

    model: nn.Module
    """The parameters to optimise are ``model.parameters()``."""

    def train_loss(self, step: int) -> Tensor:
        """The scalar loss on step ``step``'s mini-batch, with the graph for ``backward()``."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics, including ``target.metric``; runs under ``torch.no_grad()``."""
        ...


@runtime_checkable
class Workload(Protocol):
    """A problem to race optimizers on."""

    name: str
    description: str
    target: Target
    steps: int
    """Optimizer steps per run."""
    eval_every: int
    """Evaluate every this many steps (and after the last)."""

    def setup(self, seed: int, *, sparse: bool = False) -> Trainable:
        """A fresh model and its data for ``seed``.

        ``sparse`` is True when the optimizer accepts sparse gradients; workloads with
        embeddings then produce them (``nn.Embedding(sparse=True)``), others ignore it.
        """
        ...

"""What the built-in workloads share: seeds, batch order, a budget, and a classifier run.

Every random choice of a run (the model's initial weights, the order of mini-batches,
generated training data) draws from its own stream, derived from the run's seed with
numpy's :class:`~numpy.random.SeedSequence`. A run is therefore a pure function of its
seed, and nothing touches torch's global random state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from optarena.arena.workload import Target
from optarena.checks import whole_number

# Stream tags: a seed and a tag name one independent random stream.
MODEL_STREAM = 0
BATCH_STREAM = 1
DATA_STREAM = 2
TEST_STREAM = 3


def derived_seed(*keys: int) -> int:
    """A 64-bit seed that depends on every one of the non-negative integer ``keys``."""
    if any(k < 0 for k in keys):
        raise ValueError(f"seeds must be non-negative integers, got {keys}")
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0])


def generator(*keys: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded with :func:`derived_seed` of ``keys``."""
    return torch.Generator().manual_seed(derived_seed(*keys))


def seeded_model(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` under the model stream of ``seed``, leaving torch's global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(seed, MODEL_STREAM))
        return build()


class ShuffledBatches:
    """The example indices of step ``t``'s mini-batch: epochs of fresh permutations.

    Epoch ``e`` is a permutation drawn from the batch stream of ``(seed, e)``, cut into
    ``n // batch_size`` batches (the remainder is left out of that epoch), so the batch of
    any step can be computed without replaying the steps before it.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be between 1 and the {n} training examples, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> Tensor:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._order = torch.randperm(self.n, generator=generator(self.seed, BATCH_STREAM, epoch))
            self._epoch = epoch
        return self._order[index * self.batch_size : (index + 1) * self.batch_size]


@dataclass(frozen=True)
class Budget:
    """A run's length: optimizer steps, the evaluation interval, and the mini-batch size."""

    steps: int
    eval_every: int
    batch_size: int


class BuiltinWorkload:
    """A built-in workload: fixed name, description and target; a budget, shortened by ``quick``.

    Subclasses set the class attributes and implement :meth:`setup`. ``steps``,
    ``eval_every`` and ``batch_size`` override the budget; ``quick=True`` picks the short
    budget the arena's quick preset uses (the target stays the same).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    target: ClassVar[Target]
    budget: ClassVar[Budget]
    quick_budget: ClassVar[Budget]
    needs_data_dir: ClassVar[bool] = False
    drawable: ClassVar[bool] = False
    """Its runs expose ``loss_fn`` and ``train_data``, so ``optarena landscape`` can draw it."""
    version: ClassVar[str] = "1"
    """Changes whenever the workload's data, model or loss changes: stored targets are kept per version."""

    def __init__(
        self,
        *,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        chosen = self.quick_budget if quick else self.budget
        self.quick = bool(quick)
        self.steps = whole_number("steps", chosen.steps if steps is None else steps)
        self.eval_every = whole_number("eval_every", chosen.eval_every if eval_every is None else eval_every)
        self.batch_size = whole_number("batch_size", chosen.batch_size if batch_size is None else batch_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, steps={self.steps}, "
            f"eval_every={self.eval_every}, batch_size={self.batch_size})"
        )

    def setup(self, seed: int, *, sparse: bool = False):  # pragma: no cover - abstract
        raise NotImplementedError


def cross_entropy(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy as ``logsumexp(logits) - logits[target]``.

    The same function as ``torch.nn.functional.cross_entropy`` (agreeing to float rounding),
    written with kernels that are several times faster on CPU for a few classes, where
    torch's ``log_softmax`` is slow; it dominates evaluating a loss landscape's grid.
    """
    losses = logits.logsumexp(dim=-1) - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class ClassifierRun:
    """One seed's classifier on fixed tensors: cross-entropy on shuffled mini-batches.

    :meth:`evaluate` reports ``test_loss`` and ``test_accuracy`` over the whole held-out
    set, in chunks of ``eval_chunk`` examples, with the model in eval mode.

    Beyond the protocol it exposes ``loss_fn(outputs, targets)`` and ``train_data``
    (inputs, targets): what a loss landscape needs to evaluate the same training loss at
    other parameters.
    """

    loss_fn = staticmethod(cross_entropy)

    def __init__(
        self,
        model: nn.Module,
        data: tuple[Tensor, Tensor, Tensor, Tensor],
        batch_size: int,
        seed: int,
        eval_chunk: int = 2048,
    ) -> None:
        self.model = model
        self.x_train, self.y_train, self.x_test, self.y_test = data
        self.batches = ShuffledBatches(len(self.x_train), batch_size, seed)
        self.eval_chunk = eval_chunk

    def train_loss(self, step: int) -> Tensor:
        batch = self.batches(step)
        return cross_entropy(self.model(self.x_train[batch]), self.y_train[batch])

    @property
    def train_data(self) -> tuple[Tensor, Tensor]:
        return self.x_train, self.y_train

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        loss_sum, correct = 0.0, 0
        for first in range(0, len(self.x_test), self.eval_chunk):
            x = self.x_test[first : first + self.eval_chunk]
            y = self.y_test[first : first + self.eval_chunk]
            logits = self.model(x)
            loss_sum += float(cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(dim=1) == y).sum())
        self.model.train(was_training)
        n = len(self.x_test)
        return {"test_loss": loss_sum / n, "test_accuracy": correct / n}

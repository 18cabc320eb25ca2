"""``mnist-mlp`` and ``cifar10-cnn``: real images read from the user's ``--data-dir``.

The files are read and checked when the workload is made, so a wrong directory fails at
once with the names of the files expected (see :mod:`optarena.data.mnist` and
:mod:`optarena.data.cifar10`). Pixels stay uint8 in memory; the model's first module
standardises them with the training set's per-channel mean and standard deviation.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from optarena.arena.workload import Target
from optarena.arena.workloads.base import (
    Budget,
    BuiltinWorkload,
    ClassifierRun,
    seeded_model,
)
from optarena.checks import whole_number
from optarena.data.cifar10 import TEST_FILES, TRAIN_FILES, load_cifar10
from optarena.data.idx import DataFormatError
from optarena.data.mnist import expected_files, load_mnist

Data = tuple[Tensor, Tensor, Tensor, Tensor]


class Standardize(nn.Module):
    """uint8 pixels -> ``(x / 255 - mean) / std`` per channel; no parameters."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() / 255.0 - self.mean) / self.std


def channel_statistics(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation of uint8 images (n, channels, h, w), scaled to [0, 1].

    Computed exactly from each channel's histogram of the 256 byte values.
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        counts /= counts.sum()
        mean = float((counts * values).sum())
        means.append(mean)
        stds.append(max(float((counts * (values - mean) ** 2).sum()) ** 0.5, 1e-6))
    shape = (-1, 1, 1)
    return torch.tensor(means).reshape(shape), torch.tensor(stds).reshape(shape)


@lru_cache(maxsize=1)
def _mnist(data_dir: str) -> Data:
    splits = load_mnist(data_dir)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return (
        torch.from_numpy(x_train).unsqueeze(1),
        torch.from_numpy(y_train).long(),
        torch.from_numpy(x_test).unsqueeze(1),
        torch.from_numpy(y_test).long(),
    )


@lru_cache(maxsize=1)
def _cifar10(data_dir: str) -> Data:
    splits = load_cifar10(data_dir)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_test), torch.from_numpy(y_test)


def data_digest(data: Data) -> str:
    """A SHA-256 of the four tensors' shapes, types and bytes: what the runs read, wherever it came from."""
    digest = hashlib.sha256()
    for tensor in data:
        array = tensor.contiguous().numpy()
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


@lru_cache(maxsize=2)
def _digest(kind: str, data_dir: str) -> str:
    return data_digest(_mnist(data_dir) if kind == "mnist" else _cifar10(data_dir))


def _require(name: str, data_dir: str | Path | None, expected: str) -> str:
    if data_dir is None:
        raise DataFormatError(
            f"Workload {name!r} reads its data from a directory: give --data-dir DIR (data_dir=...) holding {expected}"
        )
    return str(Path(data_dir).expanduser().resolve())


class RealDataWorkload(BuiltinWorkload):
    """A built-in workload whose data come from ``data_dir``; ``eval_examples`` caps the test set used."""

    needs_data_dir = True
    expected: str = ""
    """The files expected in ``data_dir``, for the error when it is missing."""
    data_kind: str = ""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        quick: bool = False,
        steps: int | None = None,
        eval_every: int | None = None,
        batch_size: int | None = None,
        eval_examples: int | None = None,
    ) -> None:
        super().__init__(quick=quick, steps=steps, eval_every=eval_every, batch_size=batch_size)
        whole_number("eval_examples", eval_examples, none_means="the whole test set")
        self.data_dir = _require(self.name, data_dir, self.expected)
        self.eval_examples = eval_examples
        x_train = self.data()[0]
        self.mean, self.std = channel_statistics(x_train)
        if self.batch_size > len(x_train):
            raise ValueError(
                f"batch_size ({self.batch_size}) exceeds the {len(x_train)} training images in {self.data_dir}"
            )

    def data(self) -> Data:  # pragma: no cover - abstract
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A SHA-256 of the data read from ``data_dir`` (part of every trial's key)."""
        return _digest(self.data_kind, self.data_dir)

    def model(self, mean: Tensor, std: Tensor, shape: tuple[int, ...]) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def setup(self, seed: int, *, sparse: bool = False) -> ClassifierRun:
        x_train, y_train, x_test, y_test = self.data()
        if self.eval_examples is not None:
            x_test, y_test = x_test[: self.eval_examples], y_test[: self.eval_examples]
        model = seeded_model(seed, lambda: self.model(self.mean, self.std, tuple(x_train.shape[1:])))
        return ClassifierRun(model, (x_train, y_train, x_test, y_test), self.batch_size, seed, eval_chunk=1000)


class MnistMLP(RealDataWorkload):
    """A ReLU network with one hidden layer of 128 units on MNIST's 28x28 digits."""

    name = "mnist-mlp"
    description = "MNIST from --data-dir (IDX files), MLP 784-128-10"
    target = Target("test_accuracy", 0.96, "max")
    budget = Budget(steps=1000, eval_every=50, batch_size=128)
    quick_budget = Budget(steps=500, eval_every=50, batch_size=128)
    drawable = True
    expected = ", ".join(expected_files()) + " (each may end in .gz)"
    data_kind = "mnist"

    def data(self) -> Data:
        return _mnist(self.data_dir)

    def model(self, mean: Tensor, std: Tensor, shape: tuple[int, ...]) -> nn.Module:
        pixels = shape[0] * shape[1] * shape[2]
        return nn.Sequential(
            Standardize(mean, std), nn.Flatten(), nn.Linear(pixels, 128), nn.ReLU(), nn.Linear(128, 10)
        )


class Cifar10CNN(RealDataWorkload):
    """A stride-2 3x3 convolution (16 channels), two 3x3 convolutions (32 channels) each with a
    2x2 max-pool, and a linear classifier: small enough for CPU."""

    name = "cifar10-cnn"
    description = "CIFAR-10 from --data-dir (binary batches), a small three-layer CNN"
    target = Target("test_accuracy", 0.5, "max")
    budget = Budget(steps=1000, eval_every=100, batch_size=128)
    quick_budget = Budget(steps=400, eval_every=100, batch_size=128)
    drawable = True
    expected = ", ".join(TRAIN_FILES + TEST_FILES) + " (the binary version)"
    data_kind = "cifar10"

    def data(self) -> Data:
        return _cifar10(self.data_dir)

    def model(self, mean: Tensor, std: Tensor, shape: tuple[int, ...]) -> nn.Module:
        def pooled(inputs: int, outputs: int) -> list[nn.Module]:
            return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

        return nn.Sequential(
            Standardize(mean, std),
            nn.Conv2d(shape[0], 16, 3, stride=2, padding=1),
            nn.ReLU(),
            *pooled(16, 32),
            *pooled(32, 32),
            nn.Flatten(),
            nn.Linear(32 * (shape[1] // 8) * (shape[2] // 8), 10),
        )

"""Small MNIST and CIFAR-10 files in their on-disk formats, written byte by byte for the tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: two zero bytes, the type code, the rank, big-endian sizes, the elements."""
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, sizes=(("train", 24), ("test", 12)), gz: bool = False, seed: int = 0) -> dict:
    """Four IDX files of random 28x28 images and labels; returns the arrays written per split."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in sizes:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for name, array in zip(MNIST_NAMES[split], (images, labels), strict=True):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        written[split] = (images, labels)
    return written


def cifar_records(n: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records of 1 label byte + 3,072 pixel bytes, and the labels and images they hold."""
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    data = b"".join(bytes([labels[i]]) + images[i].tobytes() for i in range(n))
    return data, labels, images


def write_cifar10(folder: Path, per_file: int = 6, seed: int = 0) -> dict:
    """The six binary batch files with ``per_file`` records each; returns the arrays per file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in CIFAR_NAMES:
        data, labels, images = cifar_records(per_file, rng)
        (folder / name).write_bytes(data)
        written[name] = (images, labels)
    return written

"""MNIST from the four IDX files the user downloaded, plain or ``.gz``; nothing is fetched.

Expected in ``data_dir`` (or ``data_dir/mnist``, or torchvision's ``data_dir/MNIST/raw``)::

    train-images-idx3-ubyte   60,000 x 28 x 28 unsigned bytes, magic 0x00000803
    train-labels-idx1-ubyte   60,000 labels 0..9,               magic 0x00000801
    t10k-images-idx3-ubyte    10,000 x 28 x 28
    t10k-labels-idx1-ubyte    10,000 labels

each optionally gzip-compressed with the ``.gz`` suffix. Fashion-MNIST uses the same names
and format. Counts are not fixed: images and labels of a split must agree, and every label
must be a class 0..9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optarena.data.idx import DataFormatError, read_idx

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def candidate_folders(data_dir: Path) -> list[Path]:
    """Where the files are looked for, in order."""
    return [data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"]


def expected_files() -> list[str]:
    """The four file names, in the order of :data:`FILES`."""
    return [name for pair in FILES.values() for name in pair]


def find_mnist(data_dir: str | Path) -> dict[str, Path]:
    """File name -> path of each of the four files (plain preferred to ``.gz``).

    Raises :class:`DataFormatError` naming the files that are missing and where they were
    looked for.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFormatError(f"MNIST data directory {data_dir} does not exist or is not a directory")
    for folder in candidate_folders(data_dir):
        found = {}
        for name in expected_files():
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if found:
            missing = [name for name in expected_files() if name not in found]
            if missing:
                raise DataFormatError(
                    f"MNIST in {folder}: missing {', '.join(missing)} (each may end in .gz); "
                    f"expected {', '.join(expected_files())}"
                )
            return found
    searched = ", ".join(str(f) for f in candidate_folders(data_dir))
    raise DataFormatError(
        f"No MNIST files in {searched}: expected {', '.join(expected_files())} "
        "(the IDX files from the MNIST site, each may end in .gz)"
    )


def read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one split: uint8 arrays (n, rows, cols) and (n,), checked to agree."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "expected one label per image"
        )
    if len(images) == 0:
        raise DataFormatError(f"{images_path}: holds no images")
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataFormatError(
            f"{labels_path}: label {int(labels[bad])} at index {bad}; expected classes 0..{NUM_CLASSES - 1}"
        )
    return images, labels


def load_mnist(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (images, labels)}`` read from ``data_dir``."""
    found = find_mnist(data_dir)
    splits = {split: read_split(found[images], found[labels]) for split, (images, labels) in FILES.items()}
    if splits["train"][0].shape[1:] != splits["test"][0].shape[1:]:
        raise DataFormatError(
            f"MNIST images in {found[FILES['train'][0]]} are {splits['train'][0].shape[1:]} but in "
            f"{found[FILES['test'][0]]} {splits['test'][0].shape[1:]}; expected the same size"
        )
    return splits

"""CIFAR-10 from the binary version's batch files; nothing is fetched and nothing unpickled.

Krizhevsky's "CIFAR-10 binary version" (``cifar-10-binary.tar.gz``, unpacked to
``cifar-10-batches-bin/``) holds ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin``. Each file is a run of 3,073-byte records: one label byte (0..9), then
a 32x32 image as 1,024 red, 1,024 green and 1,024 blue bytes, rows first. The official
files hold 10,000 records each (30,730,000 bytes); any whole number of records up to that
is read, and a file's length is checked before any of it is.

The Python version of the data set (``cifar-10-batches-py``) is pickled and is refused:
unpickling runs code that the file chooses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from optarena.data.idx import DataFormatError

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10
MAX_RECORDS = 10_000
"""Records a batch file may hold: the official files' count."""
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
FOLDER = "cifar-10-batches-bin"


def read_batch(path: str | Path, max_records: int = MAX_RECORDS) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one batch file: uint8 (n, 3, 32, 32) and int64 (n,).

    The file's length is checked (a whole number of records, at most ``max_records``)
    before any of it is read.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a folder, not a CIFAR-10 batch file") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0 or size % RECORD_BYTES:
            hint = ""
            if size and size % (RECORD_BYTES + 1) == 0:
                hint = " (a multiple of 3,074 bytes: is it CIFAR-100, whose records have two label bytes?)"
            raise DataFormatError(
                f"{path}: {size} bytes is not a whole number of 3,073-byte records "
                f"(1 label byte + 3,072 pixel bytes); the official batch files are 30,730,000 bytes{hint}"
            )
        if size // RECORD_BYTES > max_records:
            raise DataFormatError(
                f"{path}: {size:,} bytes hold {size // RECORD_BYTES:,} records; a batch file holds at most "
                f"{max_records:,} (the official files hold 10,000: 30,730,000 bytes)"
            )
        data = np.empty(size, dtype=np.uint8)
        view = memoryview(data)
        done = 0
        while done < size:
            got = handle.readinto(view[done : done + (1 << 20)])
            if not got:
                raise DataFormatError(f"{path}: ended after {done} of its {size} bytes while it was read")
            done += got
    records = data.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataFormatError(
            f"{path}: record {bad} has label {int(labels[bad])}; expected classes 0..{NUM_CLASSES - 1} "
            "(is this the CIFAR-10 binary version?)"
        )
    images = records[:, 1:].reshape(-1, *IMAGE_SHAPE).copy()
    return images, labels


def find_cifar10(data_dir: str | Path) -> Path:
    """The folder holding the six batch files: ``data_dir`` or ``data_dir/cifar-10-batches-bin``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFormatError(f"CIFAR-10 data directory {data_dir} does not exist or is not a directory")
    expected = ", ".join(TRAIN_FILES + TEST_FILES)
    for folder in (data_dir, data_dir / FOLDER):
        present = [name for name in TRAIN_FILES + TEST_FILES if (folder / name).is_file()]
        if present:
            missing = [name for name in TRAIN_FILES + TEST_FILES if name not in present]
            if missing:
                raise DataFormatError(f"CIFAR-10 in {folder}: missing {', '.join(missing)}; expected {expected}")
            return folder
    for folder in (data_dir, data_dir / "cifar-10-batches-py"):
        if (folder / "data_batch_1").is_file():
            raise DataFormatError(
                f"{folder} holds the Python (pickled) version of CIFAR-10, which optarena does not read: "
                "unpickling a file can run code. Use the binary version (cifar-10-binary.tar.gz), "
                f"whose files are {expected}"
            )
    raise DataFormatError(
        f"No CIFAR-10 binary files in {data_dir} or {data_dir / FOLDER}: expected {expected} "
        "(the binary version, cifar-10-binary.tar.gz, unpacked)"
    )


def load_cifar10(data_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (images, labels)}``; train is the five batches in order."""
    folder = find_cifar10(data_dir)
    splits = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        parts = [read_batch(folder / name) for name in names]
        splits[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return splits

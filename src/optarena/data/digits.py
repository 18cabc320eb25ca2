"""The 8x8 handwritten digits that ship with optarena (1,797 images, 10 classes).

The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak, CC BY 4.0),
the copy scikit-learn bundles, stored as ``digits.npz`` by ``tools/make_digits.py``.
Pixels are counts 0..16; :func:`load_digits_tensors` scales them to [0, 1].
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
from torch import Tensor

NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: uint8 arrays of shape (1797, 8, 8) and (1797,)."""
    with resources.files("optarena.data").joinpath("digits.npz").open("rb") as handle:
        stored = np.load(handle, allow_pickle=False)
        return stored["images"].copy(), stored["labels"].copy()


def load_digits_tensors(
    test_fraction: float = 0.2, split_seed: int = 0, flatten: bool = True, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)``, pixels in [0, 1], a fixed shuffled split.

    ``flatten`` gives rows of 64 features; otherwise images of shape (1, 8, 8). The split
    depends only on ``split_seed``, so every optimizer and seed sees the same held-out set.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    images, labels = load_digits_arrays()
    x = torch.from_numpy(images).to(dtype) / 16.0
    x = x.reshape(len(x), -1) if flatten else x.unsqueeze(1)
    y = torch.from_numpy(labels).long()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]

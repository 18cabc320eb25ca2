"""MNIST-1D (Greydanus 2020), generated here by the ``mnist1d`` package: nothing is downloaded.

Greydanus, *Scaling down deep learning* (https://arxiv.org/abs/2011.14439): ten hand-made
1-D templates of the digits, each example padded, dilated, scaled, translated, sheared and
made noisy, then subsampled to 40 points. 5,000 examples, 4,000 to train and 1,000 held
out. Small models separate well on it (the paper: a linear model about 32% test accuracy,
an MLP about 68%, a CNN about 94%), which is why the arena uses it.

:func:`mnist1d_arrays` runs the package's own generator (``mnist1d.data.make_dataset``,
what ``get_dataset(..., download=False, regenerate=True)`` runs) without its pickle cache,
and leaves the global random state of ``numpy`` and ``random`` as it found it (the
generator seeds and draws from both).
"""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

DEFAULT_SEED = 42
"""The package's own default seed: the data set of the paper."""
LENGTH = 40
NUM_CLASSES = 10


def _generator():
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("MNIST-1D workloads need the mnist1d package: pip install mnist1d") from None
    return get_dataset_args, make_dataset


@lru_cache(maxsize=4)
def mnist1d_arrays(seed: int = DEFAULT_SEED, samples: int = 5000) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` as float32 / int64 arrays; a pure function of the arguments."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not isinstance(samples, int) or samples < 100:
        raise ValueError(f"samples must be a whole number >= 100, got {samples!r}")
    get_dataset_args, make_dataset = _generator()
    args = get_dataset_args()
    args.seed, args.num_samples = seed, samples
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return (
        data["x"].astype(np.float32),
        data["y"].astype(np.int64),
        data["x_test"].astype(np.float32),
        data["y_test"].astype(np.int64),
    )


def mnist1d_tensors(seed: int = DEFAULT_SEED, channels: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The arrays as tensors; ``channels`` gives signals of shape (1, 40) for 1-D convolutions."""
    x, y, x_test, y_test = (torch.from_numpy(a.copy()) for a in mnist1d_arrays(seed))
    if channels:
        x, x_test = x.unsqueeze(1), x_test.unsqueeze(1)
    return x, y, x_test, y_test

"""The digits that ship with optarena."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optarena.data.digits import load_digits_arrays, load_digits_tensors


def test_stored_digits_equal_scikit_learns_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    reference = sklearn_datasets.load_digits()
    images, labels = load_digits_arrays()
    assert np.array_equal(images.reshape(len(images), -1), reference.data.astype(np.uint8))
    assert np.array_equal(labels, reference.target)


def test_split_is_fixed_disjoint_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_tensors(test_fraction=0.2)
    assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
    assert 0.0 <= float(x_train.min()) and float(x_train.max()) == 1.0
    again = load_digits_tensors(test_fraction=0.2)
    assert torch.equal(again[2], x_test)
    rows = {tuple(r.tolist()) for r in x_train}
    overlap = sum(tuple(r.tolist()) in rows for r in x_test)
    assert overlap < 10  # a few digits are pixel-identical duplicates in the source data
    assert set(y_test.tolist()) == set(range(10))
    images = load_digits_tensors(flatten=False)[0]
    assert images.shape[1:] == (1, 8, 8)


def test_bad_fraction_is_rejected():
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_tensors(test_fraction=1.0)

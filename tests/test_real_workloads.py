"""MNIST-1D and the character model: generated offline, deterministic, held-out variants, stored targets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from optarena.arena.workloads import get_workload
from optarena.arena.workloads.variants import VARIANT_SPACES, draw_variant
from optarena.data.mnist1d import mnist1d_arrays
from optarena.data.text import pydoc_text, text_fingerprint

pytest.importorskip("mnist1d")


def test_mnist1d_is_generated_deterministically_and_leaves_the_global_random_state_alone():
    np.random.seed(7)
    random.seed(7)
    before = (np.random.rand(), random.random())
    np.random.seed(7)
    random.seed(7)
    x, y, x_test, y_test = mnist1d_arrays(3, samples=200)
    assert (np.random.rand(), random.random()) == before
    assert x.shape == (160, 40) and x_test.shape == (40, 40) and x.dtype == np.float32
    assert set(np.unique(np.concatenate([y, y_test]))) <= set(range(10))
    mnist1d_arrays.cache_clear()
    again = mnist1d_arrays(3, samples=200)
    assert np.array_equal(again[0], x)
    assert not np.array_equal(mnist1d_arrays(4, samples=200)[0], x)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        mnist1d_arrays(-1)


@pytest.mark.parametrize(
    "name, metric, options",
    [
        ("mnist1d-mlp", "test_accuracy", {"width": 32, "depth": 1}),
        ("mnist1d-cnn", "test_accuracy", {"channels": 8}),
        ("char-lm", "validation_loss", {"width": 16, "layers": 1, "context": 16, "eval_windows": 8}),
    ],
)
def test_each_workload_trains_a_step_and_reports_its_metric_the_same_for_one_seed(name, metric, options):
    workload = get_workload(name, quick=True, **options)
    results = []
    for _ in range(2):
        run = workload.setup(5)
        optimizer = torch.optim.Adam(run.model.parameters(), lr=1e-2)
        loss = run.train_loss(0)
        loss.backward()
        optimizer.step()
        results.append((float(loss), run.evaluate()[metric]))
    assert results[0] == results[1]
    other = workload.setup(6)
    assert float(other.train_loss(0)) != results[0][0]


def test_the_character_model_learns_from_python_s_help_text_and_its_version_names_the_text():
    text = pydoc_text()
    assert len(text) > 100_000 and "statement" in text
    assert get_workload("char-lm").version.endswith(text_fingerprint())
    assert text_fingerprint("a") != text_fingerprint("b")


def test_held_out_variants_are_drawn_from_a_seed_and_change_data_and_architecture():
    for name, space in VARIANT_SPACES.items():
        first, again, other = draw_variant(name, 11), draw_variant(name, 11), draw_variant(name, 12)
        assert first == again and first != other
        changed = set(first) - {"data_seed"}
        assert len(changed) == 1 and first[changed.pop()] in sum(space.values(), ())
        get_workload(name, quick=True, **first)  # the options are valid
    with pytest.raises(ValueError, match="has no held-out variants"):
        draw_variant("rosenbrock", 0)


def test_the_target_option_replaces_only_the_value_and_must_be_a_number():
    base = get_workload("mnist1d-mlp", quick=True)
    targeted = get_workload("mnist1d-mlp", quick=True, target=0.7)
    assert targeted.target.value == 0.7 and targeted.target.metric == base.target.metric
    assert targeted.steps == base.steps and targeted.name == base.name
    with pytest.raises(ValueError, match="'target' must be a finite number"):
        get_workload("mnist1d-mlp", target="high")

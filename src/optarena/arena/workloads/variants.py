"""Held-out workload variants, drawn when a race starts so that no setting can be tuned to them.

AlgoPerf (Dahl et al. 2023, https://arxiv.org/abs/2306.07179) scores submissions also on
variants of its workloads sampled after the submissions are fixed. Here a variant changes
the seed of the data generator (or, for the language model, which text is held out) and
one architectural setting: the width or depth of the MLP, the channels of the CNN, the
width or depth of the transformer. :func:`draw_variant` picks one from a seed, so a race
that prints its seed can be repeated exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

VARIANT_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "mnist1d-mlp": {"width": (64, 128, 192), "depth": (1, 3)},
    "mnist1d-cnn": {"channels": (16, 32, 48)},
    "char-lm": {"width": (24, 48), "layers": (1, 3)},
}
"""Per workload, the architectural options a variant may change and their values."""

DATA_SEED_RANGE = 1_000_000


def has_variants(name: str) -> bool:
    """Whether the built-in workload ``name`` has held-out variants."""
    return name in VARIANT_SPACES


def draw_variant(name: str, seed: int) -> dict[str, Any]:
    """A held-out variant of workload ``name``: options for :func:`~optarena.arena.workloads.get_workload`.

    A fresh ``data_seed`` from [0, 1,000,000) and, when the workload declares any, one
    architectural option set to one of its values; a pure function of ``(name, seed)``.
    """
    if name not in VARIANT_SPACES:
        raise ValueError(f"workload {name!r} has no held-out variants; those that do: {', '.join(VARIANT_SPACES)}")
    rng = np.random.default_rng([seed, sum(name.encode())])
    options: dict[str, Any] = {"data_seed": int(rng.integers(DATA_SEED_RANGE))}
    space = VARIANT_SPACES[name]
    if space:
        option = sorted(space)[int(rng.integers(len(space)))]
        values = space[option]
        options[option] = values[int(rng.integers(len(values)))]
    return options

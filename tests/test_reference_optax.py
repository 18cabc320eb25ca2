"""LAMB and LARS against optax, through trajectories stored by tools/make_optax_fixtures.py.

Each stored configuration holds optax's parameters after each of 100 steps on a noisy
quadratic in float64; optarena replays the same problem and must stay within 1e-8
relative of it at every step. The one configuration where optax defines a different
algorithm (optax.lars with weight decay) must differ, so the disagreement stays known.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import optarena

FIXTURES = Path(__file__).parent / "fixtures" / "optax_trajectories.npz"
TOLERANCE = 1e-8


def load():
    with np.load(FIXTURES, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


META, ARRAYS = load()
CONFIGS = {c["name"]: c for c in META["configs"]}


def replay(config: dict) -> dict[str, np.ndarray]:
    """optarena's parameters after each step on the stored problem."""
    names = META["tensors"]
    params = [torch.tensor(ARRAYS[f"problem/{n}/init"], dtype=torch.float64, requires_grad=True) for n in names]
    curvature = [torch.tensor(ARRAYS[f"problem/{n}/curvature"]) for n in names]
    noise = [torch.tensor(ARRAYS[f"problem/{n}/noise"]) for n in names]
    keywords = {k: tuple(v) if isinstance(v, list) else v for k, v in config["optarena"].items()}
    opt = optarena.create(config["optimizer"], params, **keywords)
    path = {n: [] for n in names}
    for step in range(META["steps"]):
        for p, h, c in zip(params, curvature, noise):
            p.grad = h * p.detach() + c[step]
        opt.step()
        for n, p in zip(names, params):
            path[n].append(p.detach().numpy().copy())
    return {n: np.stack(v) for n, v in path.items()}


def worst_relative_error(config: dict) -> float:
    """Largest error over steps and tensors, relative to the tensor's largest optax entry at that step."""
    ours = replay(config)
    worst = 0.0
    for name, path in ours.items():
        theirs = ARRAYS[f"{config['name']}/{name}"].reshape(META["steps"], -1)
        error = np.abs(path.reshape(theirs.shape) - theirs).max(axis=1, initial=0.0)
        scale = np.maximum(np.abs(theirs).max(axis=1, initial=0.0), 1e-300)
        worst = max(worst, float((error / scale).max()))
    return worst


MATCHING = [name for name, c in CONFIGS.items() if c["matches"]]


@pytest.mark.parametrize("name", MATCHING)
def test_trajectory_matches_optax(name):
    assert worst_relative_error(CONFIGS[name]) <= TOLERANCE


@pytest.mark.parametrize("name", [name for name, c in CONFIGS.items() if not c["matches"]])
def test_documented_disagreement_with_optax_remains(name):
    """optax.lars divides by ||g + wd w||, the paper by ||g|| + wd ||w||: the paths must part."""
    assert worst_relative_error(CONFIGS[name]) > 1e-4


def test_fixtures_cover_what_the_tests_need():
    assert META["steps"] == 100
    assert {c["optimizer"] for c in CONFIGS.values()} == {"lamb", "lars"}
    assert any(c["optarena"].get("weight_decay") for c in CONFIGS.values() if c["optimizer"] == "lamb" and c["matches"])
    assert any("betas" in c["optarena"] and "eps" in c["optarena"] for c in CONFIGS.values())
    starts_at_zero = [n for n in META["tensors"] if not ARRAYS[f"problem/{n}/init"].any()]
    assert starts_at_zero, "a tensor whose norm is zero at the start"
    for name in MATCHING:
        assert np.isfinite(ARRAYS[f"{name}/w"]).all()

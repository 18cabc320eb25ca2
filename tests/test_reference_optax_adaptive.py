"""Lion, ADOPT, AdEMAMix and Sophia against optax, through trajectories stored by
``tools/make_optax_fixtures.py --adaptive`` (tests/fixtures/optax_adaptive_trajectories.npz).

Each stored configuration holds optax's parameters after each of 100 steps on the noisy
quadratic of tests/test_reference_optax.py, in float64; optarena replays the same problem and
must stay within 1e-8 relative of it at every step. Sophia's Hessian estimate is Hutchinson's,
fed through ``step(hessian_closure=...)`` with the quadratic as the objective: on this separable
quadratic ``v * (H v)`` is the curvature exactly, whatever the random signs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import optarena

FIXTURES = Path(__file__).parent / "fixtures" / "optax_adaptive_trajectories.npz"
TOLERANCE = 1e-8


def load():
    with np.load(FIXTURES, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


META, ARRAYS = load()
CONFIGS = {c["name"]: c for c in META["configs"]}


def replay(config: dict) -> dict[str, np.ndarray]:
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
        if config["optimizer"] == "sophia":

            def objective(step=step):
                return sum((0.5 * h * p**2 + c[step] * p).sum() for p, h, c in zip(params, curvature, noise))

            opt.step(hessian_closure=objective)
        else:
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


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trajectory_matches_optax(name):
    assert worst_relative_error(CONFIGS[name]) <= TOLERANCE


def test_fixtures_cover_defaults_and_other_settings_of_each():
    assert META["steps"] == 100
    by_optimizer = {}
    for c in CONFIGS.values():
        by_optimizer.setdefault(c["optimizer"], []).append(c)
    assert set(by_optimizer) == {"lion", "adopt", "ademamix", "sophia"}
    for configs in by_optimizer.values():
        assert len(configs) >= 2
    assert any("t_alpha_beta3" in c["optarena"] for c in by_optimizer["ademamix"])
    assert any(c["optarena"].get("update_period") for c in by_optimizer["sophia"])


def test_sophia_without_its_estimate_departs_from_optax():
    """The estimate matters: without the Hessian closure the path is not optax's."""
    config = dict(CONFIGS["sophia-hutchinson"])
    names = META["tensors"]
    params = [torch.tensor(ARRAYS[f"problem/{n}/init"], dtype=torch.float64, requires_grad=True) for n in names]
    opt = optarena.create("sophia", params, **config["optarena"])
    for step in range(META["steps"]):
        for p, n in zip(params, names):
            p.grad = torch.tensor(ARRAYS[f"problem/{n}/curvature"]) * p.detach() + torch.tensor(
                ARRAYS[f"problem/{n}/noise"][step]
            )
        opt.step()
    theirs = ARRAYS["sophia-hutchinson/w"][-1]
    assert np.abs(params[0].detach().numpy() - theirs).max() > 1e-4

"""Write the optax reference trajectories that optarena's LAMB and LARS are tested against.

optax (JAX) is far too large to be a test dependency, so its trajectories are computed
once and stored in ``tests/fixtures/optax_trajectories.npz``; ``tests/test_reference_optax.py``
replays them. Rerun this script (in an environment of its own, never the project's) when
a configuration is added or to check a newer optax:

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax optax numpy
    /tmp/jaxenv/bin/python tools/make_optax_fixtures.py

The problem is a noisy quadratic in float64 (``jax_enable_x64``), one per tensor:
``grad = curvature * theta + noise[t]`` with the curvature and the 100 noise draws stored,
so the test computes the same gradients from its own parameters with exactly rounded
operations. The tensors include one that starts at zero (LAMB's and LARS's ratio falls
back to 1) and one whose gradient is always zero (both norms zero).

Each configuration records the optax call and the equivalent optarena keywords, and
whether the two define the same algorithm (``matches``); a configuration that does not is
kept to measure a documented disagreement (optax.lars's treatment of weight decay).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

STEPS = 100
SEED = 20190401
OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "optax_trajectories.npz"

SHAPES = {"w": (3, 2), "b": (4,), "v": (5,), "s": (), "z": (2,)}
"""Tensors of the problem: ``b`` starts at zero, ``z`` stays at zero (zero gradient)."""

CONFIGS = [
    # LAMB: optax.lamb = scale_by_adam(eps_root=0) -> add_decayed_weights -> scale_by_trust_ratio
    # -> scale_by_learning_rate, the same algorithm as optarena's LAMB.
    {"name": "lamb-defaults", "optimizer": "lamb", "optax": {"learning_rate": 1e-3}, "optarena": {}},
    {
        "name": "lamb-weight-decay",
        "optimizer": "lamb",
        "optax": {"learning_rate": 1e-2, "weight_decay": 0.01},
        "optarena": {"lr": 1e-2, "weight_decay": 0.01},
    },
    {
        "name": "lamb-betas-eps-decay",
        "optimizer": "lamb",
        "optax": {"learning_rate": 5e-3, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "weight_decay": 0.1},
        "optarena": {"lr": 5e-3, "betas": [0.8, 0.99], "eps": 1e-4, "weight_decay": 0.1},
    },
    {
        "name": "lamb-large-step",
        "optimizer": "lamb",
        "optax": {"learning_rate": 0.1, "b1": 0.95, "b2": 0.9999, "eps": 1e-9, "weight_decay": 0.05},
        "optarena": {"lr": 0.1, "betas": [0.95, 0.9999], "eps": 1e-9, "weight_decay": 0.05},
    },
    # LARS: without weight decay (and with a constant learning rate) optax.lars is the paper's
    # Algorithm 1; with weight decay its ratio divides by ||g + wd w|| instead of
    # ||g|| + wd ||w||.
    {"name": "lars-defaults", "optimizer": "lars", "optax": {"learning_rate": 1.0}, "optarena": {"lr": 1.0}},
    {
        "name": "lars-nesterov",
        "optimizer": "lars",
        "optax": {"learning_rate": 2.0, "momentum": 0.8, "nesterov": True, "trust_coefficient": 0.01},
        "optarena": {"lr": 2.0, "momentum": 0.8, "nesterov": True, "trust_coefficient": 0.01},
    },
    {
        "name": "lars-eps",
        "optimizer": "lars",
        "optax": {"learning_rate": 0.5, "momentum": 0.5, "trust_coefficient": 0.02, "eps": 1e-3},
        "optarena": {"lr": 0.5, "momentum": 0.5, "trust_coefficient": 0.02, "eps": 1e-3},
    },
    {
        "name": "lars-weight-decay",
        "optimizer": "lars",
        "optax": {"learning_rate": 1.0, "weight_decay": 0.1, "trust_coefficient": 0.01},
        "optarena": {"lr": 1.0, "weight_decay": 0.1, "trust_coefficient": 0.01},
        "matches": False,
    },
]


def problem(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Start, curvature and per-step noise of each tensor's quadratic."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in SHAPES.items():
        init = rng.standard_normal(shape) * (3.0 if name == "v" else 1.0)
        offset = rng.standard_normal(shape)
        noise = offset + 0.5 * rng.standard_normal((STEPS, *shape))
        if name in ("b", "z"):
            init = np.zeros(shape)
        if name == "z":
            noise = np.zeros((STEPS, *shape))
        out[name] = {"init": init, "curvature": rng.uniform(0.5, 2.0, shape), "noise": noise}
    return out


def trajectory(config: dict, tensors: dict) -> dict[str, np.ndarray]:
    """The parameters after each of the STEPS optax updates."""
    build = {"lamb": optax.lamb, "lars": optax.lars}[config["optimizer"]]
    opt = build(**config["optax"])
    params = {name: jnp.asarray(t["init"], dtype=jnp.float64) for name, t in tensors.items()}
    state = opt.init(params)
    path = {name: [] for name in tensors}
    for step in range(STEPS):
        grads = {name: tensors[name]["curvature"] * params[name] + tensors[name]["noise"][step] for name in tensors}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for name in tensors:
            path[name].append(np.asarray(params[name], dtype=np.float64))
    return {name: np.stack(values) for name, values in path.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    tensors = problem(SEED)
    arrays: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        for key, value in t.items():
            arrays[f"problem/{name}/{key}"] = value
    for config in CONFIGS:
        for name, values in trajectory(config, tensors).items():
            arrays[f"{config['name']}/{name}"] = values
    meta = {
        "steps": STEPS,
        "tensors": list(SHAPES),
        "configs": [{"matches": True, **c} for c in CONFIGS],
        "jax": jax.__version__,
        "optax": optax.__version__,
        "generated_by": "tools/make_optax_fixtures.py",
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes, {len(CONFIGS)} configurations)")


if __name__ == "__main__":
    main()

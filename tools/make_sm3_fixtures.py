"""Write the optax.sm3 trajectories that optarena's SM3 is tested against.

optax (JAX) is too large to be a test dependency, so its trajectories are computed once and
stored in ``tests/fixtures/optax_sm3.npz``; ``tests/test_reference_matrix.py`` replays them.
Rerun it in an environment of its own, never the project's:

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax optax numpy
    /tmp/jaxenv/bin/python tools/make_sm3_fixtures.py

The problem is a noisy quadratic in float64 (``jax_enable_x64``), one per tensor:
``grad = curvature * theta + noise[t]``, with the curvature and the noise stored, so the test
computes the same gradients from its own parameters. The tensors are a matrix, a tensor of
three dimensions (three accumulators), two vectors, and a vector whose gradient is always zero
(its accumulator stays 0: optax's update is 0 there). optax's SM3 takes no scalars.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

STEPS = 100
SEED = 19011150
OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "optax_sm3.npz"
SHAPES = {"w": (4, 3), "t": (2, 3, 4), "b": (4,), "v": (6,), "z": (3,)}

CONFIGS = [
    # optax.sm3 = scale_by_sm3(b1=momentum, b2=1) -> scale_by_learning_rate; eps is scale_by_sm3's 1e-8
    {
        "name": "sm3-momentum",
        "optax": {"learning_rate": 0.1, "momentum": 0.9},
        "optarena": {"lr": 0.1, "momentum": 0.9, "eps": 1e-8},
    },
    {
        "name": "sm3-plain",
        "optax": {"learning_rate": 0.1, "momentum": 0.0},
        "optarena": {"lr": 0.1, "momentum": 0.0, "eps": 1e-8},
    },
    # the exponential average of the accumulators: scale_by_sm3(b2 < 1) written out
    {
        "name": "sm3-average",
        "chain": {"b1": 0.5, "b2": 0.9, "eps": 1e-8, "learning_rate": 0.05},
        "optarena": {"lr": 0.05, "momentum": 0.5, "beta": 0.9, "eps": 1e-8},
    },
]


def problem(rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {}
    for name, shape in SHAPES.items():
        arrays[f"problem/{name}/init"] = rng.standard_normal(shape)
        arrays[f"problem/{name}/curvature"] = rng.uniform(0.5, 2.0, shape)
        noise = rng.standard_normal((STEPS, *shape)) * 0.3
        if name == "z":
            arrays[f"problem/{name}/init"] = np.zeros(shape)
            noise[:] = 0.0
        arrays[f"problem/{name}/noise"] = noise
    return arrays


def optimizer(config: dict) -> optax.GradientTransformation:
    if "optax" in config:
        return optax.sm3(**config["optax"])
    c = config["chain"]
    return optax.chain(
        optax.scale_by_sm3(b1=c["b1"], b2=c["b2"], eps=c["eps"]), optax.scale_by_learning_rate(c["learning_rate"])
    )


def trajectory(config: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    params = {n: jnp.asarray(arrays[f"problem/{n}/init"]) for n in SHAPES}
    opt = optimizer(config)
    state = opt.init(params)
    path = {n: [] for n in SHAPES}
    for step in range(STEPS):
        grads = {
            n: jnp.asarray(arrays[f"problem/{n}/curvature"]) * params[n] + arrays[f"problem/{n}/noise"][step]
            for n in SHAPES
        }
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        for n in SHAPES:
            path[n].append(np.asarray(params[n]))
    return {n: np.stack(v) for n, v in path.items()}


def main() -> None:
    arrays = problem(np.random.default_rng(SEED))
    for config in CONFIGS:
        for name, values in trajectory(config, arrays).items():
            arrays[f"{config['name']}/{name}"] = values
    meta = {
        "steps": STEPS,
        "tensors": list(SHAPES),
        "optax": optax.__version__,
        "jax": jax.__version__,
        "configs": [{"name": c["name"], "optarena": c["optarena"]} for c in CONFIGS],
    }
    np.savez_compressed(OUTPUT, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {OUTPUT} (optax {optax.__version__}, jax {jax.__version__})")


if __name__ == "__main__":
    main()

"""Write the optax reference trajectories that optarena's LAMB and LARS are tested against.

optax (JAX) is far too large to be a test dependency, so its trajectories are computed
once and stored in ``tests/fixtures/optax_trajectories.npz``; ``tests/test_reference_optax.py``
replays them. Rerun this script (in an environment of its own, never the project's) when
a configuration is added or to check a newer optax:

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax optax numpy
    /tmp/jaxenv/bin/python tools/make_optax_fixtures.py
    /tmp/jaxenv/bin/python tools/make_optax_fixtures.py --adaptive   # Lion, ADOPT, AdEMAMix, Sophia

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


# -- the adaptive family of 2023-2024, stored in a file of their own ------------------------------

ADAPTIVE_OUTPUT = OUTPUT.with_name("optax_adaptive_trajectories.npz")


def _ademamix_alpha(alpha: float, period: float):
    """optax calls a schedule with the 0-based count; the paper's schedulers take the step t = count + 1."""
    return lambda count: jnp.minimum((count + 1) * alpha / period, alpha)


def _ademamix_beta3(beta1: float, beta3: float, period: float):
    log1, log3 = np.log(beta1), np.log(beta3)

    def schedule(count):
        fraction = (count + 1) / period
        return jnp.minimum(jnp.exp(log1 * log3 / ((1 - fraction) * log3 + fraction * log1)), beta3)

    return schedule


ADAPTIVE_CONFIGS = [
    # Lion: optax.lion = scale_by_lion -> add_decayed_weights -> scale_by_learning_rate (default decay 1e-3)
    {
        "name": "lion-defaults",
        "optimizer": "lion",
        "optax": {"learning_rate": 1e-3, "weight_decay": 0.0},
        "optarena": {"lr": 1e-3},
    },
    {
        "name": "lion-betas-decay",
        "optimizer": "lion",
        "optax": {"learning_rate": 3e-3, "b1": 0.95, "b2": 0.98, "weight_decay": 0.1},
        "optarena": {"lr": 3e-3, "betas": [0.95, 0.98], "weight_decay": 0.1},
    },
    # ADOPT: optax.contrib.adopt = scale_by_adopt -> scale_by_learning_rate
    {"name": "adopt-defaults", "optimizer": "adopt", "optax": {"learning_rate": 1e-2}, "optarena": {"lr": 1e-2}},
    {
        "name": "adopt-betas-eps",
        "optimizer": "adopt",
        "optax": {"learning_rate": 5e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-8},
        "optarena": {"lr": 5e-2, "betas": [0.8, 0.99], "eps": 1e-8},
    },
    {
        "name": "adopt-no-clipping",
        "optimizer": "adopt",
        "optax": {"learning_rate": 1e-2, "use_clipping": False},
        "optarena": {"lr": 1e-2, "clipping": False},
    },
    # AdEMAMix: optax.contrib.ademamix = scale_by_ademamix -> add_decayed_weights -> scale_by_learning_rate
    {"name": "ademamix-defaults", "optimizer": "ademamix", "optax": {"learning_rate": 1e-2}, "optarena": {"lr": 1e-2}},
    {
        "name": "ademamix-decay",
        "optimizer": "ademamix",
        "optax": {
            "learning_rate": 1e-2,
            "b1": 0.8,
            "b2": 0.99,
            "b3": 0.999,
            "alpha": 8.0,
            "eps": 1e-6,
            "weight_decay": 0.1,
        },
        "optarena": {"lr": 1e-2, "betas": [0.8, 0.99, 0.999], "alpha": 8.0, "eps": 1e-6, "weight_decay": 0.1},
    },
    {
        "name": "ademamix-schedulers",
        "optimizer": "ademamix",
        "optax": {"learning_rate": 1e-2, "schedules": {"alpha": 5.0, "b1": 0.9, "b3": 0.9999, "period": 40}},
        "optarena": {"lr": 1e-2, "t_alpha_beta3": 40},
    },
    # Sophia: optax.contrib.sophia = scale_by_sophia (Hutchinson) -> add_decayed_weights -> scale_by_learning_rate;
    # on this separable quadratic Hutchinson's v * (H v) is the curvature exactly (v = +-1)
    {
        "name": "sophia-hutchinson",
        "optimizer": "sophia",
        "optax": {"learning_rate": 1e-2},
        "optarena": {
            "lr": 1e-2,
            "estimator": "hutchinson",
            "bias_correction": True,
            "rho": 0.01,
            "eps": 1e-8,
            "weight_decay": 1e-4,
        },
    },
    {
        "name": "sophia-period-3",
        "optimizer": "sophia",
        "optax": {
            "learning_rate": 3e-2,
            "b1": 0.9,
            "b2": 0.95,
            "gamma": 0.05,
            "weight_decay": 0.0,
            "update_interval": 3,
        },
        "optarena": {
            "lr": 3e-2,
            "betas": [0.9, 0.95],
            "rho": 0.05,
            "estimator": "hutchinson",
            "bias_correction": True,
            "eps": 1e-8,
            "weight_decay": 0.0,
            "update_period": 3,
        },
    },
]


def _build(config: dict):
    """The optax optimizer of a configuration."""
    kwargs = dict(config["optax"])
    name = config["optimizer"]
    if name == "ademamix" and "schedules" in kwargs:
        s = kwargs.pop("schedules")
        kwargs["alpha"] = _ademamix_alpha(s["alpha"], s["period"])
        kwargs["b3"] = _ademamix_beta3(s["b1"], s["b3"], s["period"])
    build = {
        "lamb": optax.lamb,
        "lars": optax.lars,
        "lion": optax.lion,
        "adopt": optax.contrib.adopt,
        "ademamix": optax.contrib.ademamix,
        "sophia": optax.contrib.sophia,
    }[name]
    return build(**kwargs)


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
    opt = _build(config)
    params = {name: jnp.asarray(t["init"], dtype=jnp.float64) for name, t in tensors.items()}
    state = opt.init(params)
    path = {name: [] for name in tensors}
    for step in range(STEPS):
        grads = {name: tensors[name]["curvature"] * params[name] + tensors[name]["noise"][step] for name in tensors}
        extra = {}
        if config["optimizer"] == "sophia":  # the objective whose gradient grads is, for the Hessian estimate

            def objective(theta, step=step):
                return sum(
                    jnp.sum(0.5 * tensors[n]["curvature"] * theta[n] ** 2 + tensors[n]["noise"][step] * theta[n])
                    for n in tensors
                )

            extra = {"obj_fn": objective}
        updates, state = opt.update(grads, state, params, **extra)
        params = optax.apply_updates(params, updates)
        for name in tensors:
            path[name].append(np.asarray(params[name], dtype=np.float64))
    return {name: np.stack(values) for name, values in path.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--adaptive", action="store_true", help=f"write the adaptive family's file ({ADAPTIVE_OUTPUT.name}) instead"
    )
    args = parser.parse_args()
    configs = ADAPTIVE_CONFIGS if args.adaptive else CONFIGS
    if args.adaptive and args.output == OUTPUT:
        args.output = ADAPTIVE_OUTPUT
    tensors = problem(SEED)
    arrays: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        for key, value in t.items():
            arrays[f"problem/{name}/{key}"] = value
    for config in configs:
        for name, values in trajectory(config, tensors).items():
            arrays[f"{config['name']}/{name}"] = values
    meta = {
        "steps": STEPS,
        "tensors": list(SHAPES),
        "configs": [{"matches": True, **_plain(c)} for c in configs],
        "jax": jax.__version__,
        "optax": optax.__version__,
        "generated_by": "tools/make_optax_fixtures.py",
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes, {len(configs)} configurations)")


def _plain(config: dict) -> dict:
    """The configuration as JSON can hold it (schedules as their parameters)."""
    return json.loads(json.dumps(config, default=str))


if __name__ == "__main__":
    main()

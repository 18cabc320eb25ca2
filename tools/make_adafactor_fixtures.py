"""Write tests/fixtures/adafactor_transformers.pt: Adafactor trajectories from Hugging Face Transformers.

Transformers is a large dependency, so the project does not install it; run this script in
a throwaway environment that has it (and the torch the project pins), for example::

    python -m venv /tmp/hf && /tmp/hf/bin/pip install torch==2.13.0 transformers
    /tmp/hf/bin/python tools/make_adafactor_fixtures.py

It runs ``transformers.optimization.Adafactor`` in float64 for 100 steps on a few tensors
(a matrix, a 3-D tensor, a vector, a scalar) under several configurations, with the
deterministic gradients of ``GRADIENT`` (the test computes the same ones), and stores the
parameters every 10 steps and the final optimizer state. tests/test_reference_adafactor.py
compares optarena.Adafactor with them. Each case's ``params`` is one row per checkpoint: the
tensors flattened and concatenated in order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers
from transformers.optimization import Adafactor

GRADIENT = "sin(1.3 * p + 0.7 * step + i) + 0.1 * p; None for tensor 2 on every third step"
SHAPES = [(6, 4), (2, 3, 4), (5,), ()]
STEPS = 100
EVERY = 10
CONFIGS = {
    "defaults": {},
    "beta1": {"beta1": 0.9},
    "weight_decay": {"weight_decay": 0.1},
    "fixed_lr": {"relative_step": False, "lr": 1e-2},
    "fixed_lr_unscaled_momentum_decay": {
        "relative_step": False,
        "lr": 1e-3,
        "scale_parameter": False,
        "beta1": 0.9,
        "weight_decay": 0.05,
    },
    "warmup_init": {"warmup_init": True},
    "unscaled": {"scale_parameter": False},
    "clip_decay_eps": {"clip_threshold": 0.5, "decay_rate": -0.5, "eps": (1e-20, 1e-2)},
}


def set_gradients(params: list[torch.Tensor], step: int) -> None:
    for i, p in enumerate(params):
        if i == 2 and step % 3 == 0:
            p.grad = None
        else:
            p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def initial_parameters() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for shape in SHAPES]


def trajectory(config: dict) -> dict:
    params = [p.clone().requires_grad_() for p in initial_parameters()]
    optimizer = Adafactor(params, **config)
    checkpoints = []
    for step in range(STEPS):
        set_gradients(params, step)
        optimizer.step()
        if (step + 1) % EVERY == 0:
            checkpoints.append(torch.cat([p.detach().reshape(-1) for p in params]))
    states = []
    for p in params:
        state = optimizer.state[p]
        states.append({k: v.clone() for k, v in state.items() if torch.is_tensor(v) and k != "RMS"})
    return {"config": config, "params": torch.stack(checkpoints), "state": states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "adafactor_transformers.pt"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    fixture = {
        "source": f"transformers {transformers.__version__} Adafactor, torch {torch.__version__}",
        "gradient": GRADIENT,
        "steps": STEPS,
        "every": EVERY,
        "initial": initial_parameters(),
        "cases": {name: trajectory(config) for name, config in CONFIGS.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {fixture['source']}")


if __name__ == "__main__":
    main()

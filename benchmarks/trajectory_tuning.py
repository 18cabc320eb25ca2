"""How long fair tuning on a test function takes, and the NQM sweep (prints figures; not a test).

    python benchmarks/trajectory_tuning.py [--function rosenbrock] [--steps 500] [--trials 24] [--starts 32]

Tunes the default trajectory optimizers (those registered) with one torch thread and prints
the wall time in total and per optimizer step, then times the NQM batch-size sweep.
"""

from __future__ import annotations

import argparse
import time

import torch

from optarena import functions
from optarena.functions.command import default_optimizers
from optarena.functions.fair_tuning import Budget, tune_all
from optarena.functions.nqm import NoisyQuadraticModel
from optarena.functions.nqm_study import batch_size_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", default="rosenbrock")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--starts", type=int, default=32)
    parser.add_argument("--nqm-dim", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)

    names, _ = default_optimizers()
    function = functions.get(args.function)
    budget = Budget(steps=args.steps, trials=args.trials, starts=args.starts)
    start = time.perf_counter()
    study = tune_all(function, names, budget)
    seconds = time.perf_counter() - start
    # Per optimizer: the trials, one held-out run and one run from the common start.
    runs = len(names) * (budget.trials + 2)
    print(
        f"{function.name}: {len(names)} optimizers x {budget.trials} trials x {budget.steps} steps "
        f"x {budget.starts} starts, one torch thread"
    )
    print(
        f"  tuning wall time: {seconds:.1f} s ({1e6 * seconds / (runs * budget.steps):.0f} us per step "
        f"of all {budget.starts} starts)"
    )
    for result in study.results:
        print(f"  {result.name:<10} {result.settings()}")

    model = NoisyQuadraticModel(dim=args.nqm_dim)
    sizes = [2.0**k for k in range(15)]
    start = time.perf_counter()
    batch_size_sweep(model, sizes, 0.01 * model.initial_loss)
    print(
        f"NQM d={args.nqm_dim}: batch-size sweep over {len(sizes)} sizes x 3 methods in "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()

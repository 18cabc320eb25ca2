"""Seconds per run and the metric reached, for each workload at its default and quick budgets.

Each run follows the protocol the arena uses (``optarena.arena.workload``) on one torch
thread: zero_grad, train_loss, backward, step; evaluate every ``eval_every`` steps and
after the last. The wall time covers setup and the whole run; s/run is the median over
seeds. Learning rates are given per optimizer as ``name=lr``; the figures show whether a
decent setting reaches the target and a poor one does not.

    python benchmarks/workload_runs.py --workloads digits-mlp,digits-cnn \
        --optimizers adam=1e-3,sgd=1e-3 --seeds 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from optarena.arena.workloads import get_workload
from optarena.registry import create, lookup


def run(workload, optimizer: str, lr: float, seed: int, sparse: bool | None = None) -> dict[str, float]:
    """One run; returns seconds, the final and best metric, and the first step at target.

    ``sparse`` defaults to whether the optimizer accepts sparse gradients, as in the arena.
    """
    if sparse is None:
        sparse = bool(getattr(lookup(optimizer).cls, "supports_sparse", False))
    start = time.perf_counter()
    trainable = workload.setup(seed, sparse=sparse)
    opt = create(optimizer, trainable.model.parameters(), lr=lr)
    target = workload.target
    best, final, first_hit, diverged = None, math.nan, None, False
    for step in range(workload.steps):
        opt.zero_grad(set_to_none=True)
        loss = trainable.train_loss(step)
        if not torch.isfinite(loss):
            diverged = True
            break
        loss.backward()
        opt.step()
        done = step + 1
        if done % workload.eval_every == 0 or done == workload.steps:
            final = trainable.evaluate()[target.metric]
            if best is None or target.better(final, best):
                best = final
            if first_hit is None and target.reached(final):
                first_hit = done
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "final": final, "best": best, "first_hit": first_hit, "diverged": diverged}


def _pairs(text: str) -> list[tuple[str, float]]:
    pairs = []
    for item in text.split(","):
        name, _, lr = item.partition("=")
        pairs.append((name.strip(), float(lr)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="digits-mlp")
    parser.add_argument("--optimizers", type=_pairs, default=_pairs("adam=1e-3,sgd=1e-3"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--budgets", default="default,quick", help="default, quick or both")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(
        f"{'workload':18} {'budget':7} {'steps':>5} {'optimizer':10} {'lr':>8} {'s/run':>6}  "
        f"{'final':>8} {'best':>8}  hit at"
    )
    for spec in args.workloads.split(","):
        for budget in args.budgets.split(","):
            workload = get_workload(spec, data_dir=args.data_dir, quick=budget == "quick")
            for name, lr in args.optimizers:
                results = [run(workload, name, lr, seed) for seed in range(args.seeds)]
                seconds = statistics.median(r["seconds"] for r in results)
                finals = ",".join("div" if r["diverged"] else f"{r['final']:.3f}" for r in results)
                bests = ",".join("-" if r["best"] is None else f"{r['best']:.3f}" for r in results)
                hits = ",".join(str(r["first_hit"]) if r["first_hit"] else "-" for r in results)
                print(
                    f"{workload.name:18} {budget:7} {workload.steps:5d} {name:10} {lr:8.1e} {seconds:6.2f}  "
                    f"{finals:>8} {bests:>8}  {hits}"
                )


if __name__ == "__main__":
    main()

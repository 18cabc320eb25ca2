"""Cost of the checks at the top of every step, against the step itself.

Times, per call: the check of param groups whose values did not change (every step without
a scheduler), the check after a scheduler changed ``lr`` (every step with one), and a whole
eager Adam step on the same parameters (CPU, float32), so the share of the checks can be
read off. Medians of ``--repeats`` rounds of ``--calls`` calls each.

    python benchmarks/step_checks.py
    python benchmarks/step_checks.py --tensors 200 --groups 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import optarena


def per_call(action, calls: int, repeats: int) -> float:
    """Median seconds per call of ``action``."""
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            action()
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=20, help="parameters per group")
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--size", type=int, default=1000, help="elements per parameter")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    groups = [
        {"params": [torch.randn(args.size, requires_grad=True) for _ in range(args.tensors)]}
        for _ in range(args.groups)
    ]
    opt = optarena.Adam(groups, lr=1e-3, foreach=True)
    for group in opt.param_groups:
        for p in group["params"]:
            p.grad = torch.randn_like(p)
    opt.step()

    unchanged = per_call(opt._check_before_step, args.calls, args.repeats)

    def after_a_scheduler() -> None:
        for group in opt.param_groups:
            group["lr"] = group["lr"] * 1.0000001
        opt._check_before_step()

    def scheduler_only() -> None:
        for group in opt.param_groups:
            group["lr"] = group["lr"] * 1.0000001

    changed = per_call(after_a_scheduler, args.calls, args.repeats) - per_call(scheduler_only, args.calls, args.repeats)
    step = per_call(opt.step, args.calls // 4 or 1, args.repeats)

    print(
        f"optarena {optarena.__version__}, torch {torch.__version__}; Adam, {args.groups} groups x {args.tensors} tensors x {args.size} elements"
    )
    print(f"check, groups unchanged:     {unchanged * 1e6:8.2f} us per step ({unchanged / step:.1%} of a step)")
    print(f"check, lr changed in each:   {changed * 1e6:8.2f} us per step ({changed / step:.1%} of a step)")
    print(f"whole eager step:            {step * 1e6:8.2f} us")


if __name__ == "__main__":
    main()

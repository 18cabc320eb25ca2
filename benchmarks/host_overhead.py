"""Host time of one optimizer step: optarena's against torch.optim's, on tiny tensors.

On tensors of a few elements the step's kernels cost next to nothing, so its time is the
Python and dispatch work around them: what dominates a step on a GPU, where the kernels run
asynchronously (docs/gpu.md). Each case steps its own copy of the parameters with fixed
gradients; rounds interleave the cases, and the figure is the median over the rounds of each
round's median step. ``--profile CASE`` prints where one case's step spends its host time
(cProfile) instead. Examples::

    python benchmarks/host_overhead.py
    python benchmarks/host_overhead.py --shapes tiny --rounds 30 --cases adam,torch-adam-fused
    python benchmarks/host_overhead.py --profile adam --shapes tiny
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import optarena
from optarena.bench.params import transformer_shapes

SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "tiny": ((16,),) * 157,
    "transformer-tiny": transformer_shapes(12, 8, 64, total_tensors=157),
}
"""157 tensors of 16 elements; the benchmark's transformer layout (157 tensors) at width 8."""

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

CASES: dict[str, Factory] = {
    "sgd": lambda p: optarena.create("sgd", p, lr=1e-3, momentum=0.9),
    "torch-sgd-fused": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, fused=True),
    "torch-sgd-foreach": lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9, foreach=True),
    "adam": lambda p: optarena.create("adam", p, lr=1e-3),
    "torch-adam-fused": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
    "torch-adam-foreach": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
    "adamw": lambda p: optarena.create("adamw", p, lr=1e-3, weight_decay=0.01),
    "torch-adamw-fused": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01, fused=True),
    "adagrad": lambda p: optarena.create("adagrad", p, lr=1e-2),
    "torch-adagrad-fused": lambda p: torch.optim.Adagrad(p, lr=1e-2, fused=True),
    "lion-compiled": lambda p: optarena.create("lion", p, lr=1e-4, fused=True),
    "lamb-compiled": lambda p: optarena.create("lamb", p, lr=1e-3, fused=True),
    "adafactor-compiled": lambda p: optarena.create("adafactor", p, fused=True),
    "nadam-eager": lambda p: optarena.create("nadam", p, lr=1e-3, fused=False),
    "torch-nadam-foreach": lambda p: torch.optim.NAdam(p, lr=1e-3, foreach=True),
}


REFERENCES = {
    "sgd": "torch-sgd-fused",
    "adam": "torch-adam-fused",
    "adamw": "torch-adamw-fused",
    "adagrad": "torch-adagrad-fused",
    "lion-compiled": "torch-adam-fused",
    "lamb-compiled": "torch-adam-fused",
    "adafactor-compiled": "torch-adam-fused",
    "nadam-eager": "torch-nadam-foreach",
}
"""What each optarena case is compared with: torch's kernel for the same algorithm, torch's
fused Adam as the yardstick for the compiled chains, torch's foreach NAdam for the eager one."""


def make_params(shapes: tuple[tuple[int, ...], ...], seed: int = 0) -> list[torch.Tensor]:
    """Leaf parameters with fixed random gradients (one set per case, made alike)."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=generator))
        p.grad = 1e-3 * torch.randn(shape, generator=generator)
        params.append(p)
    return params


def step_times(optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    """Seconds of each of ``steps`` steps."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def measure(cases: list[str], shapes: str, rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """Each case's median step (ms) in each round; the cases interleave round by round."""
    optimizers = {}
    for name in cases:
        optimizer = CASES[name](make_params(SHAPES[shapes]))
        step_times(optimizer, warmup)  # state made, anything compiled or cached
        optimizers[name] = optimizer
    medians: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(rounds):
        order = cases[round_index % len(cases) :] + cases[: round_index % len(cases)]
        for name in order:
            medians[name].append(1e3 * statistics.median(step_times(optimizers[name], steps)))
    return medians


def profile(case: str, shapes: str, steps: int, warmup: int, top: int) -> None:
    """cProfile of ``steps`` steps of one case, the functions by their own time and by total."""
    optimizer = CASES[case](make_params(SHAPES[shapes]))
    step_times(optimizer, warmup)
    profiler = cProfile.Profile()
    profiler.enable()
    step_times(optimizer, steps)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=40, help="steps per case and round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--profile", metavar="CASE", help="profile one case instead of timing")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    parser.add_argument("--json", metavar="PATH", help="also write each case's round medians (ms) here")
    args = parser.parse_args(argv)
    cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in cases + ([args.profile] if args.profile else []) if name not in CASES]
    if unknown:
        parser.error(f"unknown cases {', '.join(unknown)}; choose from {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    shape_sets = list(SHAPES) if args.shapes == "all" else [args.shapes]
    if args.profile:
        for shapes in shape_sets:
            print(f"## {args.profile} on {shapes}")
            profile(args.profile, shapes, args.rounds * args.steps, args.warmup, args.top)
        return 0
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds of {args.steps} steps")
    results = {}
    for shapes in shape_sets:
        medians = results[shapes] = measure(cases, shapes, args.rounds, args.steps, args.warmup)
        elements = sum(torch.Size(s).numel() for s in SHAPES[shapes])
        print(f"\n{shapes}: {len(SHAPES[shapes])} tensors, {elements:,} elements")
        print("| case | ms per step (median of rounds) | round medians min-max | against | ratio (median of rounds) |")
        print("| --- | --: | --: | --- | --: |")
        for name in cases:
            values = medians[name]
            reference = REFERENCES.get(name)
            ratio = against = ""
            if reference in medians:
                against = reference
                ratio = f"{statistics.median(a / b for a, b in zip(values, medians[reference])):.2f}"
            row = f"| {name} | {statistics.median(values):.3f} | {min(values):.3f}-{max(values):.3f} | {against} | {ratio} |"
            print(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

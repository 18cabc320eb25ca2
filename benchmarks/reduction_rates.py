"""How fast this machine reduces a matrix along its rows and along its columns.

Adafactor's factored statistics need both: the row means of ``g^2`` (an inner reduction,
along contiguous memory) and the column means (an outer one, across rows). This script
times each over the matrices of the benchmark's parameter set (``optarena.bench.params``;
``transformer``: 49 matrices, 41.8M float32 elements), compiled by Inductor as the fused step
compiles them (dynamic shapes) and eagerly with ATen, next to the in-place update that
``optarena bench`` uses as its bandwidth probe, and prints each as GB/s of the matrices read.
Then whole-tensor reductions over every tensor of the set, reading one tensor or two: a pass
that only reads (a norm, an inner product) is what Adafactor's statistics, D-Adaptation's
``sum |s|`` and LAMB's norms are.

Example::

    python benchmarks/reduction_rates.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from optarena.bench.bandwidth import InPlaceUpdate
from optarena.bench.params import make_param_set

EPS = 1e-30


def row_means(g: torch.Tensor) -> torch.Tensor:
    return (g * g + EPS).mean(-1)


def column_means(g: torch.Tensor) -> torch.Tensor:
    return (g * g + EPS).mean(-2)


def rate(fn: Callable[[torch.Tensor], object], matrices: list[torch.Tensor], rounds: int) -> float:
    """Bytes of ``matrices`` read per second by ``fn`` over all of them, median of ``rounds``."""
    for g in matrices:
        fn(g)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for g in matrices:
            fn(g)
        times.append(time.perf_counter() - start)
    return sum(g.numel() * g.element_size() for g in matrices) / statistics.median(times)


def rate_of(fn: Callable[[], object], nbytes: int, rounds: int) -> float:
    """``nbytes`` over the median time of ``fn``, after one call."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return nbytes / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    param_set = make_param_set(args.params)
    matrices = [g for g in param_set.grads if g.dim() >= 2]
    probe = InPlaceUpdate([v.clone() for v in param_set.values], param_set.grads)
    probe_rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        probe.step()
        probe_rates.append(probe.bytes_per_step / (time.perf_counter() - start))
    elements = sum(g.numel() for g in matrices)
    print(f"{len(matrices)} matrices, {elements:,} elements, {torch.get_num_threads()} threads")
    print(f"  in-place update x += s g (12 B / element)   {statistics.median(probe_rates) / 1e9:6.1f} GB/s")
    cases = {
        "row means, compiled (inner reduction)": torch.compile(row_means, dynamic=True),
        "column means, compiled (outer reduction)": torch.compile(column_means, dynamic=True),
        "row means, ATen": row_means,
        "column means, ATen": column_means,
        "g.sum(-1), ATen": lambda g: g.sum(-1),
        "g.sum(-2), ATen": lambda g: g.sum(-2),
    }
    for label, fn in cases.items():
        print(f"  {label:43s} {rate(fn, matrices, args.rounds) / 1e9:6.1f} GB/s")
    # whole-tensor reductions over every tensor: how the rate depends on the streams read
    tensors, others = param_set.grads, [v.clone() for v in param_set.values]
    pairs = list(zip(tensors, others))
    streams = {
        "sum of g^2, one tensor read (ATen)": (lambda: torch._foreach_norm(tensors, 2), 4),
        "sum |g|, one tensor read (ATen)": (lambda: torch._foreach_norm(tensors, 1), 4),
        "dot(g, p), two tensors read (ATen)": (lambda: [torch.dot(g.view(-1), p.view(-1)) for g, p in pairs], 8),
    }
    for label, (fn, width) in streams.items():
        print(f"  {label:43s} {rate_of(fn, width * sum(t.numel() for t in tensors), args.rounds) / 1e9:6.1f} GB/s")


if __name__ == "__main__":
    main()

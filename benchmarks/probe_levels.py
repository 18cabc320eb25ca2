"""Fused steps against their floor at each level of the machine's bandwidth, and the fixed cost
of a step.

On a shared machine the bandwidth probe of ``optarena bench`` (an in-place update over the
parameter set) is not one number: on the 2-core machine of docs/performance.md it runs at
about 60 GB/s at some times and at 90-100 GB/s at others, and the level changes within
seconds. A floor is bytes over the probe's rate, so the same step reads as a different
ratio at each level. This script interleaves, round after round for ``--seconds``: the
probe, each optimizer's fused step, the probe again; it files each round under the level of
the faster probe and prints, per level, each step's median time and its median ratio to its
floor (the floor of ``optarena bench``: bytes per parameter at that round's probe rate).

Then the fixed cost: each optimizer on the set's one-dimensional tensors alone (the
transformer's 108 biases and norm weights, 86,016 elements: nothing to memory), against
the probe over the same tensors. What a step costs there is what it costs whatever the
tensors' sizes: calls, Python, bookkeeping. Example::

    python benchmarks/probe_levels.py --optimizers rmsprop,qhm,adamw --seconds 300
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import optarena
from optarena.bench.bandwidth import InPlaceUpdate
from optarena.bench.params import ParamSet, make_param_set
from optarena.bench.runner import bench_settings, floor_bytes_per_param
from optarena.bench.traffic import measure_traffic

LEVELS = (("slow", 0.0, 65.0), ("middle", 65.0, 80.0), ("fast", 80.0, float("inf")))
"""Probe rates in GB/s, as levels."""


def optimizer_over(name: str, param_set: ParamSet) -> torch.optim.Optimizer:
    return optarena.create(name, param_set.fresh(), fused=True, **bench_settings(name))


def median_ms(step: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", default="rmsprop,qhm,adamax,lazyadam,adabound,adamw")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to interleave rounds")
    parser.add_argument("--repeats", type=int, default=3, help="steps per case and round (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
    param_set = make_param_set(args.params)
    values, grads = list(param_set.values), list(param_set.grads)

    optimizers, floors = {}, {}
    for name in names:
        optimizer = optimizer_over(name, param_set)
        for _ in range(3):
            optimizer.step()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        floors[name] = floor_bytes_per_param(name, measure_traffic(optimizer, params), param_set)
        optimizers[name] = optimizer
    probe = InPlaceUpdate([v.clone() for v in values], grads)
    per_param = probe.bytes_per_step / sum(v.numel() for v in values)  # 12 B for float32

    rounds = []
    end = time.time() + args.seconds
    while time.time() < end:
        first = median_ms(probe.step, args.repeats)
        row = {name: median_ms(opt.step, args.repeats) for name, opt in optimizers.items()}
        row["probe"] = min(first, median_ms(probe.step, args.repeats))
        rounds.append(row)
    print(
        f"{args.params}: {sum(v.numel() for v in values):,} parameters, {args.threads} threads, "
        f"{len(rounds)} rounds over {args.seconds:.0f} s"
    )
    print("| level | rounds | probe GB/s | optimizer | floor B/param | ms | fused/floor |")
    print("| --- | --: | --: | --- | --: | --: | --: |")
    for level, low, high in LEVELS:
        chosen = [r for r in rounds if low <= probe.bytes_per_step / r["probe"] / 1e6 < high]
        if not chosen:
            continue
        rate = statistics.median(probe.bytes_per_step / r["probe"] / 1e6 for r in chosen)
        for name in names:
            ratios = [r[name] / (r["probe"] * floors[name] / per_param) for r in chosen]
            ms = statistics.median(r[name] for r in chosen)
            print(
                f"| {level} | {len(chosen)} | {rate:.1f} | {name} | {floors[name]:.1f} | {ms:.2f} | "
                f"{statistics.median(ratios):.3f} |"
            )

    vectors = [i for i, v in enumerate(values) if v.dim() == 1]
    vector_set = ParamSet(param_set.preset, [values[i] for i in vectors], [grads[i] for i in vectors])
    small = {name: optimizer_over(name, vector_set) for name in names}
    small_probe = InPlaceUpdate([values[i].clone() for i in vectors], [grads[i] for i in vectors])
    for opt in small.values():
        for _ in range(3):
            opt.step()
    times: dict[str, list[float]] = {name: [] for name in ["probe", *names]}
    for _ in range(30):
        times["probe"].append(median_ms(small_probe.step, 10))
        for name, opt in list(small.items()):
            try:
                times[name].append(median_ms(opt.step, 10))
            except RuntimeError as error:  # fixed gradients, steps on end: an estimate may overflow
                print(f"{name}: stopped after {len(times[name])} rounds ({error})")
                del small[name]
    elements = sum(values[i].numel() for i in vectors)
    print(f"\nfixed cost: the {len(vectors)} one-dimensional tensors alone ({elements:,} elements), ms a step")
    for name, series in times.items():
        if not series:
            continue
        label = "probe (torch._foreach_add_)" if name == "probe" else name
        print(f"  {label:28s} {statistics.median(series):.3f}")


if __name__ == "__main__":
    main()

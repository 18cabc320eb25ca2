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
With ``--kernel-time`` each step is also split into the time inside the kernels Inductor
generated (each wrapped in a timer after the warm-up steps) and the rest (the compiled calls'
wrappers and the optimizer's own Python): the kernels' time against the floor says what the
loops reach, the rest is host time.

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


class KernelClock:
    """Seconds spent inside the kernels Inductor generated, summed from :meth:`start`: every
    loaded compiled module's kernel functions (``cpp_fused_*``, ``triton_*``) are replaced by
    timed wrappers. Torch internals (``PyCodeCache``), for measurement only."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def _timed(self, kernel: Callable[..., object]) -> Callable[..., object]:
        def timed(*args: object) -> object:
            start = time.perf_counter()
            out = kernel(*args)
            self.seconds += time.perf_counter() - start
            self.calls += 1
            return out

        return timed

    def install(self) -> int:
        """Wrap the kernels of every compiled module loaded so far; how many were wrapped."""
        from torch._inductor.codecache import PyCodeCache

        modules = PyCodeCache.modules
        wrapped = 0
        for module in list(modules.values() if isinstance(modules, dict) else modules):
            if getattr(module, "_kernel_clock_done", False):
                continue
            for attr in dir(module):
                if attr.startswith(("cpp_fused", "triton_")):
                    setattr(module, attr, self._timed(getattr(module, attr)))
                    wrapped += 1
            module._kernel_clock_done = True
        return wrapped

    def start(self) -> None:
        self.seconds, self.calls = 0.0, 0


def median_ms(step: Callable[[], None], repeats: int, clock: KernelClock | None = None) -> tuple[float, float]:
    """Median milliseconds of ``repeats`` calls of ``step``, and the kernels' share of that call."""
    times, kernels = [], []
    for _ in range(repeats):
        if clock is not None:
            clock.start()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        kernels.append(clock.seconds if clock is not None else 0.0)
    middle = sorted(range(repeats), key=times.__getitem__)[repeats // 2]
    return times[middle] * 1e3, kernels[middle] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", default="rmsprop,qhm,adamax,lazyadam,adabound,adamw")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to interleave rounds")
    parser.add_argument("--repeats", type=int, default=3, help="steps per case and round (median)")
    parser.add_argument(
        "--kernel-time", action="store_true", help="split each step into its compiled kernels' time and the rest"
    )
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
    clock = KernelClock() if args.kernel_time else None
    if clock is not None:
        print(f"timing {clock.install()} compiled kernels")
    probe = InPlaceUpdate([v.clone() for v in values], grads)
    per_param = probe.bytes_per_step / sum(v.numel() for v in values)  # 12 B for float32

    rounds: list[dict[str, float]] = []
    kernel_rounds: list[dict[str, float]] = []
    end = time.time() + args.seconds
    while time.time() < end:
        first, _ = median_ms(probe.step, args.repeats)
        row, kernel_row = {}, {}
        for name, opt in optimizers.items():
            row[name], kernel_row[name] = median_ms(opt.step, args.repeats, clock)
        row["probe"] = min(first, median_ms(probe.step, args.repeats)[0])
        rounds.append(row)
        kernel_rounds.append(kernel_row)
    print(
        f"{args.params}: {sum(v.numel() for v in values):,} parameters, {args.threads} threads, "
        f"{len(rounds)} rounds over {args.seconds:.0f} s"
    )
    split = " kernels ms | kernels/floor | rest ms |" if clock else ""
    print(f"| level | rounds | probe GB/s | optimizer | floor B/param | ms | fused/floor |{split}")
    print("| --- | --: | --: | --- | --: | --: | --: |" + (" --: | --: | --: |" if clock else ""))
    for level, low, high in LEVELS:
        chosen = [i for i, r in enumerate(rounds) if low <= probe.bytes_per_step / r["probe"] / 1e6 < high]
        if not chosen:
            continue
        rate = statistics.median(probe.bytes_per_step / rounds[i]["probe"] / 1e6 for i in chosen)
        for name in names:
            floor_ms = [rounds[i]["probe"] * floors[name] / per_param for i in chosen]
            ratios = [rounds[i][name] / f for i, f in zip(chosen, floor_ms)]
            ms = statistics.median(rounds[i][name] for i in chosen)
            line = f"| {level} | {len(chosen)} | {rate:.1f} | {name} | {floors[name]:.1f} | {ms:.2f} | "
            line += f"{statistics.median(ratios):.3f} |"
            kernels = [kernel_rounds[i][name] for i in chosen]
            if clock is not None and not any(kernels):  # torch's own kernels: nothing compiled
                line += " - | - | - |"
            elif clock is not None:
                kernel_ratio = statistics.median(k / f for k, f in zip(kernels, floor_ms))
                rest = statistics.median(rounds[i][name] - k for i, k in zip(chosen, kernels))
                line += f" {statistics.median(kernels):.2f} | {kernel_ratio:.3f} | {rest:.2f} |"
            print(line)

    vectors = [i for i, v in enumerate(values) if v.dim() == 1]
    vector_set = ParamSet(param_set.preset, [values[i] for i in vectors], [grads[i] for i in vectors])
    small = {name: optimizer_over(name, vector_set) for name in names}
    small_probe = InPlaceUpdate([values[i].clone() for i in vectors], [grads[i] for i in vectors])
    for opt in small.values():
        for _ in range(3):
            opt.step()
    times: dict[str, list[float]] = {name: [] for name in ["probe", *names]}
    for _ in range(30):
        times["probe"].append(median_ms(small_probe.step, 10)[0])
        for name, opt in list(small.items()):
            try:
                times[name].append(median_ms(opt.step, 10)[0])
            except (
                RuntimeError,
                FloatingPointError,
            ) as error:  # fixed gradients, steps on end: an estimate may overflow
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

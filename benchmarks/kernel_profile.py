"""Where a fused step's time goes: each compiled kernel's share, and the host's.

Steps an optimizer on the fused path (``fused=True``) over the benchmark's parameter set with
fixed gradients, with Inductor's kernel profiling on (``torch._inductor.config.cpp
.enable_kernel_profile``: each generated C++ kernel records itself), and prints for every
kernel its calls and milliseconds per step, then the step's total and what is left outside
the kernels (Python, the compiled graphs' wrappers, eager operations). A kernel's name lists
the operations Inductor fused into it (``mean``, ``sum``: a reduction; ``copy_``: a write back
to the state). The bandwidth probe of ``optarena bench`` runs in the same process, so a kernel's
time can be set against the time its bytes would take.

Read with ``TORCH_LOGS=output_code`` (the kernels' code) to see what each kernel reads and
writes. Example::

    python benchmarks/kernel_profile.py --optimizers adafactor,lamb --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import torch
import torch._inductor.config as inductor_config
from torch.profiler import ProfilerActivity, profile

import optarena
from optarena.bench.bandwidth import InPlaceUpdate
from optarena.bench.params import make_param_set
from optarena.bench.runner import bench_settings

KERNEL_PREFIX = "graph_"


def kernel_times(optimizer: torch.optim.Optimizer, steps: int) -> tuple[dict[str, list[float]], float]:
    """Each kernel's (calls, seconds) over ``steps`` profiled steps, and the steps' seconds."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            optimizer.step()
    elapsed = time.perf_counter() - start
    for event in prof.key_averages():
        if event.key.startswith(KERNEL_PREFIX):
            totals[event.key][0] += event.count
            totals[event.key][1] += event.self_cpu_time_total / 1e6
    return dict(totals), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", default="adafactor")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    os.environ["OPTARENA_CACHE_DIR"] = ""  # kernels compiled in this process, so that they record themselves
    inductor_config.cpp.enable_kernel_profile = True
    if args.threads:
        torch.set_num_threads(args.threads)
    param_set = make_param_set(args.params)
    count = sum(v.numel() for v in param_set.values)
    probe = InPlaceUpdate([v.clone() for v in param_set.values], param_set.grads)
    for name in args.optimizers.split(","):
        optimizer = optarena.create(name, param_set.fresh(), fused=True, **bench_settings(name))
        for _ in range(args.warmup):
            optimizer.step()
        rates = []
        for _ in range(5):
            start = time.perf_counter()
            probe.step()
            rates.append(probe.bytes_per_step / (time.perf_counter() - start))
        rate = statistics.median(rates)
        kernels, elapsed = kernel_times(optimizer, args.steps)
        step_ms = elapsed / args.steps * 1e3
        in_kernels = sum(seconds for _, seconds in kernels.values()) / args.steps * 1e3
        print(
            f"\n{name}: {count:,} parameters, {torch.get_num_threads()} threads, in-place bandwidth "
            f"{rate / 1e9:.1f} GB/s (4 B per parameter: {4 * count / rate * 1e3:.2f} ms)"
        )
        for key, (calls, seconds) in sorted(kernels.items(), key=lambda item: -item[1][1]):
            ms = seconds / args.steps * 1e3
            print(f"  {ms:8.2f} ms {ms / step_ms:6.1%}  {calls / args.steps:5.0f} calls  {key[:110]}")
        print(
            f"  step {step_ms:.2f} ms (profiled): kernels {in_kernels:.2f} ms, "
            f"outside them {step_ms - in_kernels:.2f} ms"
        )


if __name__ == "__main__":
    main()

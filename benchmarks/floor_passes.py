"""What keeps an optimizer's fused step above its memory-traffic floor: its passes, timed apart.

Every optimizer steps the benchmark's parameter set (optarena.bench.params; ``transformer`` is
41.9M float32 parameters in 157 tensors) with fixed gradients on the fused path
(``fused=True``), in interleaved rounds with the benchmark's bandwidth probe (an in-place
update ``x += s g`` over the same tensors, 12 bytes per element). Its floor is the bytes per
parameter the benchmark declares for it (``optarena bench``'s column) over the probe's
bandwidth of the same rounds. Printed per optimizer: the median step and the median floor, and:

- ``plain``: the same step compiled with Inductor's plain options rather than the chain's own
  (:func:`optarena.optim.compiled.compile_options`), for the chains whose options differ: what
  recomputing a reduced update, instead of storing it, changes;
- ``group pass``: the time of the group-wide preparation alone
  (:meth:`optarena.transforms.base.Transform.prepare_group`: Prodigy's and D-Adaptation's
  estimate of ``d``, whose per-tensor pass the fused path compiles), inside the same steps.

The median is robust to a few slow rounds; on a machine shared with other work, every figure
is slower alike, the ratios less so. Example::

    python benchmarks/floor_passes.py --optimizers lamb,cautious_adamw,prodigy,dadapt_adam --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import optarena
from optarena.bench.bandwidth import InPlaceUpdate
from optarena.bench.params import make_param_set
from optarena.bench.runner import bench_settings, floor_bytes_per_param
from optarena.bench.traffic import measure_traffic
from optarena.optim import compiled
from optarena.transforms.base import Transform


def plain_options(transforms: Any) -> dict[str, Any]:
    return dict(compiled.INDUCTOR_OPTIONS)


def build(
    name: str, params: list[torch.Tensor], options: Callable[[Any], dict[str, Any]], warmup: int
) -> tuple[Any, dict[Any, Any]]:
    """A fused optimizer compiled with ``options``, stepped ``warmup`` times (compilation
    included), and its own table of compiled chains: variants of one chain share a key, so each
    steps with its own table in place of the process's (:data:`optarena.optim.compiled._compiled`)."""
    chain_options, table = compiled.compile_options, {}
    compiled.compile_options, compiled._compiled = options, table
    try:
        optimizer = optarena.create(name, params, fused=True, **bench_settings(name))
        for _ in range(warmup):
            optimizer.step()
    finally:
        compiled.compile_options = chain_options
    return optimizer, table


class GroupPassTimer:
    """Accumulates the seconds an optimizer spends in its transforms' ``prepare_group``."""

    def __init__(self, optimizer: Any):
        self.seconds = 0.0
        for transform in getattr(optimizer, "transforms", ()):
            if type(transform).prepare_group is not Transform.prepare_group:
                transform.prepare_group = self._timed(transform.prepare_group)

    def _timed(self, method: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            start = time.perf_counter()
            method(*args)
            self.seconds += time.perf_counter() - start

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", default="lamb,cautious_adamw,prodigy,dadapt_adam")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    os.environ["OPTARENA_CACHE_DIR"] = ""  # the variants share a key: no disk cache, each compiled afresh
    if args.threads:
        torch.set_num_threads(args.threads)
    param_set = make_param_set(args.params)
    count = sum(v.numel() for v in param_set.values)
    runs: list[tuple[str, str, Any, GroupPassTimer, float, dict[Any, Any]]] = []
    for name in args.optimizers.split(","):
        optimizer, table = build(name, param_set.fresh(), compiled.compile_options, args.warmup)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        floor = floor_bytes_per_param(name, measure_traffic(optimizer, params), param_set)
        runs.append((name, "chain", optimizer, GroupPassTimer(optimizer), floor, table))
        if compiled.compile_options(optimizer.transforms) != compiled.INDUCTOR_OPTIONS:
            plain, table = build(name, param_set.fresh(), plain_options, args.warmup)
            runs.append((name, "plain", plain, GroupPassTimer(plain), floor, table))
    probe = InPlaceUpdate([v.clone() for v in param_set.values], param_set.grads)
    steps: list[list[float]] = [[] for _ in runs]
    groups: list[list[float]] = [[] for _ in runs]
    bandwidth = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        probe.step()
        bandwidth.append(probe.bytes_per_step / (time.perf_counter() - start))
        for i, (_, _, optimizer, timer, _, table) in enumerate(runs):
            compiled._compiled = table
            timer.seconds = 0.0
            start = time.perf_counter()
            optimizer.step()
            steps[i].append(time.perf_counter() - start)
            groups[i].append(timer.seconds)
    rate = statistics.median(bandwidth)
    print(f"{count:,} parameters, {torch.get_num_threads()} threads, in-place bandwidth {rate / 1e9:.1f} GB/s")
    for (name, variant, _, _, floor, _), times, group in zip(runs, steps, groups):
        step_ms, floor_ms = statistics.median(times) * 1e3, floor * count / rate * 1e3
        line = f"{name:16s} {variant:6s} step {step_ms:8.2f} ms  floor {floor_ms:7.2f} ms ({floor:g} B)  ratio {step_ms / floor_ms:5.2f}"
        if max(group) > 0:
            line += f"  group pass {statistics.median(group) * 1e3:7.2f} ms"
        print(line)


if __name__ == "__main__":
    main()

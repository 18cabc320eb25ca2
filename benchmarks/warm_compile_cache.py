"""Fill the compile caches for a benchmark run, several optimizers at once.

Each worker process builds one optimizer over the benchmark's parameter set with
``fused=True`` and takes two steps, so Inductor's graph and kernel caches (on disk, shared by
later processes) hold every graph the timed run will need; a later ``optarena bench`` then
loads them instead of compiling one optimizer after another. Prints each optimizer's first
and second step time (the first is a cold compile where the cache was empty).

    python benchmarks/warm_compile_cache.py --device cuda --workers 8
    python benchmarks/warm_compile_cache.py --device cuda --dtype bfloat16 --state-dtype bfloat16 --optimizers adamw,lion
"""

from __future__ import annotations

import argparse
import multiprocessing
import time


def _warm(job: tuple[str, str, str, str, str | None]) -> str:
    name, params, device, dtype, state_dtype = job
    import torch

    import optarena
    from optarena.bench.params import DTYPES, make_param_set
    from optarena.bench.runner import bench_settings

    try:
        started = time.perf_counter()
        param_set = make_param_set(params, device=device, dtype=DTYPES[dtype])
        optimizer = optarena.create(name, param_set.fresh(), fused=True, **bench_settings(name, state_dtype))
        seconds = []
        for _ in range(2):
            step_started = time.perf_counter()
            optimizer.step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - step_started)
        total = time.perf_counter() - started
        return f"{name:<20} first {seconds[0]:7.2f} s  second {seconds[1] * 1e3:9.2f} ms  total {total:6.1f} s"
    except Exception as error:  # one optimizer's failure is reported, the rest go on
        return f"{name:<20} failed: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"


def main() -> None:
    from optarena.bench.params import DTYPES
    from optarena.bench.runner import resolve_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    parser.add_argument("--state-dtype", default=None, choices=tuple(DTYPES))
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    names = resolve_names(args.optimizers.split(",") if args.optimizers else None)
    jobs = [(name, args.params, args.device, args.dtype, args.state_dtype) for name in names]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool:
        for line in pool.imap_unordered(_warm, jobs):
            print(f"[{time.perf_counter() - started:6.1f} s] {line}", flush=True)


if __name__ == "__main__":
    main()

"""What a compiled call costs around its kernel, by the size of the tensors it streams.

One RMSprop-like update (``v = 0.99 v + 0.01 g^2``, ``p -= 1e-9 g / (sqrt(v) + 1e-8)``) is
compiled with dynamic shapes, then timed two ways on the same tensors: through the compiled
function (Dynamo's frame, the ahead-of-time wrappers, then the generated module) and through
the generated module's own ``call`` (size checks and the kernel). The difference is what the
wrappers cost per call. Their Python runs right after the kernel of the call before, so when
that kernel streamed more than the last-level cache the wrappers run with cold caches, and
cost more than on small tensors. Last, one call on small tensors, alone and right after an
in-place add over 128 MiB: the same work, with warm and with cold caches. Uses torch internals (``PyCodeCache``), for measurement only::

    python benchmarks/compiled_call_cost.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def rms_update(p: torch.Tensor, g: torch.Tensor, v: torch.Tensor) -> None:
    v.mul_(0.99).addcmul_(g, g, value=0.01)
    p.addcdiv_(g, v.sqrt().add_(1e-8), value=-1e-9)


def generated_call(before: set[int]):
    """The ``call`` of the one compiled module loaded since ``before`` (ids of modules)."""
    from torch._inductor.codecache import PyCodeCache

    modules = PyCodeCache.modules
    fresh = [m for m in (modules.values() if isinstance(modules, dict) else modules) if id(m) not in before]
    (module,) = [m for m in fresh if any(a.startswith("cpp_fused") for a in dir(m))]
    return module.call if hasattr(module, "call") else module.runner.call


def loaded_ids() -> set[int]:
    from torch._inductor.codecache import PyCodeCache

    modules = PyCodeCache.modules
    return {id(m) for m in (modules.values() if isinstance(modules, dict) else modules)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="12,16,20,22", help="log2 of the elements per tensor")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    compiled = torch.compile(rms_update, dynamic=True)
    before = loaded_ids()
    warm = [torch.rand(64) + 0.5 for _ in range(3)]
    compiled(*warm)
    call = generated_call(before)
    print(f"{args.threads} threads; microseconds per call, median of {args.rounds} rounds")
    print("| elements per tensor | MiB streamed | compiled function | generated module's call | wrappers |")
    print("| --: | --: | --: | --: | --: |")
    for log2 in (int(s) for s in args.sizes.split(",")):
        n = 1 << log2
        p, g, v = (torch.rand(n) + 0.5 for _ in range(3))
        repeats = max(20, (1 << 24) // n)
        times: dict[str, list[float]] = {"compiled": [], "module": []}
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(repeats):
                compiled(p, g, v)
            times["compiled"].append((time.perf_counter() - start) / repeats * 1e6)
            start = time.perf_counter()
            for _ in range(repeats):
                call([n, p, g, v])
            times["module"].append((time.perf_counter() - start) / repeats * 1e6)
        a, b = statistics.median(times["compiled"]), statistics.median(times["module"])
        print(f"| {n:,} | {20 * n / 2**20:.1f} | {a:.1f} | {b:.1f} | {a - b:.1f} |")

    # the same small call, alone and right after an in-place add over 128 MiB (two 16M tensors)
    small = [torch.rand(4096) + 0.5 for _ in range(3)]
    x, y = torch.rand(1 << 24), torch.rand(1 << 24)
    alone, after = [], []
    for _ in range(args.rounds * 10):
        start = time.perf_counter()
        compiled(*small)
        alone.append(time.perf_counter() - start)
        x.add_(y, alpha=1e-12)
        start = time.perf_counter()
        compiled(*small)
        after.append(time.perf_counter() - start)
    print(
        f"\na compiled call on 4,096 elements: {statistics.median(alone) * 1e6:.1f} us alone, "
        f"{statistics.median(after) * 1e6:.1f} us right after an in-place add over 128 MiB"
    )


if __name__ == "__main__":
    main()

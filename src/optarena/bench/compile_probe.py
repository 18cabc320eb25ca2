"""Child process of the compile-time measurement: one optimizer's first fused steps.

    python -m optarena.bench.compile_probe --optimizer adam --params transformer --threads 2

Prints one JSON line: seconds to build the parameters, the first step (compilation
included), the second and third steps, and how many graphs Dynamo compiled. ``TORCHINDUCTOR_CACHE_DIR`` (and ``TRITON_CACHE_DIR``) set by the parent
decide whether the caches are cold or warm. ``--trivial`` compiles a one-line function
instead (it warms the toolchain of a cache directory: Inductor's ISA probes and headers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import optarena
from optarena.bench.bandwidth import synchronize
from optarena.bench.params import DTYPES, make_param_set


def _step_seconds(optimizer: torch.optim.Optimizer, device: torch.device) -> float:
    start = time.perf_counter()
    optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optarena.bench.compile_probe")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    parser.add_argument("--settings", default="{}", help="JSON object of hyperparameters")
    parser.add_argument("--trivial", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from torch._dynamo.utils import counters

    if args.trivial:
        start = time.perf_counter()
        fn = torch.compile(lambda x, y: x * 2 + y.sqrt(), dynamic=True, fullgraph=True)
        fn(torch.ones(1000, device=device), torch.ones(1000, device=device))
        print(json.dumps({"trivial_s": time.perf_counter() - start}))
        return 0

    start = time.perf_counter()
    param_set = make_param_set(args.params, device=device, dtype=DTYPES[args.dtype])
    params = param_set.fresh()
    optimizer = optarena.create(args.optimizer, params, fused=True, **json.loads(args.settings))
    setup = time.perf_counter() - start
    first = _step_seconds(optimizer, device)
    second = _step_seconds(optimizer, device)
    third = _step_seconds(optimizer, device)
    result = {
        "setup_s": setup,
        "first_step_s": first,
        "second_step_s": second,
        "third_step_s": third,
        "graphs": int(counters["stats"]["unique_graphs"]),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

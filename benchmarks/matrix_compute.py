"""What bounds the matrix optimizers' step: their matrix products and decompositions, against the
machine's own matrix-product throughput.

A memory-traffic floor (``optarena bench``'s "floor" column) assumes a step moves each byte
once and does little arithmetic per byte. Muon, Shampoo and SOAP do O(n) multiply-adds per
parameter (Newton-Schulz iterations, Kronecker statistics and rotations, eigendecompositions),
so their step is bounded by arithmetic instead. This script steps each one over the
benchmark's parameter set (optarena.bench.params, fixed gradients, eager ``fused=False``,
so that every product shows as its own aten operator) under torch.profiler for a whole
refresh period (``--steps``, default 10: one refresh of Shampoo's roots and SOAP's bases)
and prints, per optimizer:

- the mean step (timed without the profiler), and the share of a profiled period spent in
  matrix products (``aten::mm``, ``addmm``, ``bmm``, ``baddbmm``) and in decompositions
  (``linalg_eigh``, ``linalg_qr``, ...);
- the products' flops counted by the profiler, their achieved rate, and the rate of one large
  product (``--gemm-size``, default 2048) in the optimizer's matrix dtype (``ns_dtype``,
  ``matrix_dtype``), measured here;
- the compute floor: the counted products at the better of that rate and the products' own,
  and step / floor.

Example::

    python benchmarks/matrix_compute.py --optimizers muon,shampoo,soap --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import optarena
from optarena.bench.params import make_param_set
from optarena.bench.runner import bench_settings

PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
DECOMPOSITIONS = {
    f"aten::{name}"
    for name in (
        "linalg_eigh",
        "_linalg_eigh",
        "linalg_qr",
        "geqrf",
        "linalg_householder_product",
        "orgqr",
        "linalg_svd",
        "_linalg_svd",
        "linalg_cholesky_ex",
        "linalg_inv_ex",
        "_linalg_solve_ex",
    )
}


def gemm_rate(dtype: torch.dtype, size: int, rounds: int = 5) -> float:
    """Multiply-adds (as 2 flops each) per second of one ``size x size`` product, the median of
    ``rounds``."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def matrix_dtype(optimizer: torch.optim.Optimizer) -> torch.dtype:
    """The dtype an optimizer's matrix work runs in: its ``ns_dtype`` (Muon) or ``matrix_dtype``
    (Shampoo, SOAP) setting, else float32."""
    group = optimizer.param_groups[0]
    name = group.get("ns_dtype") or group.get("matrix_dtype") or "float32"
    return getattr(torch, name) if isinstance(name, str) else name


def measure(
    name: str, preset: str, steps: int, warmup: int, gemm_size: int, rates: dict[torch.dtype, float]
) -> dict[str, Any]:
    params = make_param_set(preset).fresh()
    optimizer = optarena.create(name, params, **{**bench_settings(name), "fused": False})
    for _ in range(warmup):
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    wall = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        profiled_start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        profiled_wall = time.perf_counter() - profiled_start
    events = prof.events()
    products_us = sum(e.self_cpu_time_total for e in events if e.name in PRODUCTS)
    decompositions_us = sum(
        e.self_cpu_time_total
        for e in events
        if e.name.startswith("aten::") and any(d in e.name for d in DECOMPOSITIONS)
    )
    flops = sum(e.flops for e in events if e.name in PRODUCTS and e.flops)
    dtype = matrix_dtype(optimizer)
    if dtype not in rates:
        rates[dtype] = gemm_rate(dtype, gemm_size)
    achieved = flops / (products_us / 1e6) if products_us else 0.0
    return {
        "optimizer": name,
        "step_ms": 1e3 * wall / steps,
        "profiled_ms": 1e3 * profiled_wall / steps,
        "products_share": products_us / 1e6 / profiled_wall,
        "decompositions_share": decompositions_us / 1e6 / profiled_wall,
        "gflop": flops / 1e9 / steps,
        "achieved_gflops": achieved / 1e9,
        "floor_ms": 1e3 * flops / max(rates[dtype], achieved) / steps,
        "dtype": str(dtype).removeprefix("torch."),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizers", default="muon,muon_adamw,shampoo,soap")
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gemm-size", type=int, default=2048)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rates: dict[torch.dtype, float] = {}
    print(
        "| optimizer | step ms | profiled step ms | in products | in decompositions | GFLOP / step | "
        "products' GFLOP/s | compute floor ms | step / compute floor | matrix dtype |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for name in args.optimizers.split(","):
        r = measure(name, args.params, args.steps, args.warmup, args.gemm_size, rates)
        print(
            f"| {r['optimizer']} | {r['step_ms']:.1f} | {r['profiled_ms']:.1f} | {r['products_share']:.0%} | "
            f"{r['decompositions_share']:.0%} | {r['gflop']:.2f} | {r['achieved_gflops']:.1f} | {r['floor_ms']:.1f} | "
            f"{r['step_ms'] / r['floor_ms']:.2f} | {r['dtype']} |",
            flush=True,
        )
    rates_text = ", ".join(f"{str(k).removeprefix('torch.')} {v / 1e9:.1f}" for k, v in rates.items())
    print(f"large product ({args.gemm_size}^3) rate, GFLOP/s: {rates_text}")


if __name__ == "__main__":
    main()

"""How far each optimizer on a device lands from the CPU: the figures behind tests/test_cuda.py.

For every registered optimizer (those built from a model aside), the relative distance of its
displacement after a few steps (optarena.bench.agreement) on ``--device``:
float32 eager and fused against the CPU in float64, and bf16 parameters (fused) against the
CPU in bf16. Prints a table and, with ``--json``, writes the figures.

    python benchmarks/device_agreement.py --device cuda --json agreement.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from optarena.bench.agreement import NEEDS_A_MODEL, case_for, deviation
from optarena.registry import available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--optimizers", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    names = args.optimizers.split(",") if args.optimizers else [e.name for e in available()]
    rows = []
    print(f"{'optimizer':<20} {'f32 eager':>10} {'f32 fused':>10} {'bf16 fused':>10} {'seconds':>8}", flush=True)
    for name in names:
        if name in NEEDS_A_MODEL:
            continue
        case = case_for(name)
        started = time.perf_counter()
        row = {"optimizer": name}
        for key, dtype, fused, reference in (
            ("float32_eager", torch.float32, False, torch.float64),
            ("float32_fused", torch.float32, True, torch.float64),
            ("bfloat16_fused", torch.bfloat16, True, torch.bfloat16),
        ):
            try:
                row[key] = deviation(name, args.device, dtype, fused, reference_dtype=reference, **case)
            except Exception as error:  # one optimizer's failure is reported, the rest go on
                row[key] = None
                row[f"{key}_error"] = f"{type(error).__name__}: {error}"[:300]
        row["seconds"] = time.perf_counter() - started
        rows.append(row)

        def shown(value: float | None) -> str:
            return "failed" if value is None else f"{value:.2e}"

        print(
            f"{name:<20} {shown(row['float32_eager']):>10} {shown(row['float32_fused']):>10} "
            f"{shown(row['bfloat16_fused']):>10} {row['seconds']:>8.1f}",
            flush=True,
        )
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump({"device": args.device, "torch": torch.__version__, "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()

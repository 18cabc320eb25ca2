"""What recording optimizer signals costs: step time with signals off and on at every step.

Each optimizer steps the benchmark's parameter set (optarena.bench.params; ``transformer`` is
41.9M float32 parameters in 157 tensors) with fixed gradients, on each backend named by
``--backends`` (``eager``: ``fused=False``; ``compiled``: ``fused=True``; the same backend for
both sides, never ``fused=None``, whose choice depends on what ran before), in interleaved
rounds: off, then on (``record_signals(1)``), 20 rounds of 2 steps by default, finely
interleaved so that other load on the machine falls on both sides alike. The first steps
(compilation of each graph variant) are left out. Prints the median ms per step of each and the ratio.

With ``--trial WORKLOAD`` it measures instead what the arena's recording costs a trial: the same
trial (the optimizer's defaults, seed 1) run with diagnostics off, with signals (recorded at each
evaluation, as races do by default), with signals and sharpness (``--sharpness``; adaptive
optimizers with a diagonal preconditioner add their preconditioned sharpness) and with signals and
spectrum snapshots (``--spectrum``: two per trial), in interleaved rounds; it prints the median
training and evaluation seconds of each. Examples::

    python benchmarks/signals_cost.py --params transformer --threads 2 --optimizers adamw,lamb,adafactor,ranger
    python benchmarks/signals_cost.py --trial digits-mlp --optimizers sgd,lamb,ranger --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import optarena
from optarena.bench.params import make_param_set
from optarena.bench.runner import bench_settings


def timed(optimizer: torch.optim.Optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1e3


def trial_costs(workload: str, optimizers: list[str], rounds: int, threads: int | None) -> None:
    """Median train and eval seconds of one trial per optimizer: diagnostics off, signals, signals and
    sharpness, signals and spectrum snapshots."""
    from optarena.arena.trial import TrialSpec, run_trial

    modes = {
        "off": {},
        "signals": {"signals": True},
        "+sharpness": {"signals": True, "sharpness": True},
        "+spectrum": {"signals": True, "spectrum": True},
    }
    print(f"{workload}, one trial per optimizer and mode, median of {rounds} rounds, seconds")
    print(f"{'optimizer':<12}" + "".join(f"{mode + ' train':>18}{'eval':>8}" for mode in modes))
    for name in optimizers:
        specs = {
            mode: TrialSpec(
                workload=workload,
                options={},
                data_dir=None,
                workload_key="benchmark",
                optimizer=name,
                hyperparameters={},
                seed=1,
                version="benchmark",
                threads=threads,
                **settings,
            )
            for mode, settings in modes.items()
        }
        run_trial(specs["+sharpness"])  # warm-up: data, imports
        run_trial(specs["+spectrum"])
        seconds: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for _ in range(rounds):
            for mode, spec in specs.items():
                result = run_trial(spec)
                seconds[mode].append((result.train_seconds, result.eval_seconds))
        cells = "".join(
            f"{statistics.median(t for t, _ in runs):>18.3f}{statistics.median(e for _, e in runs):>8.3f}"
            for runs in seconds.values()
        )
        print(f"{name:<12}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="transformer")
    parser.add_argument("--optimizers", default="adamw,lamb,adafactor,ranger,radam,lars")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--backends", default="eager,compiled", help="eager, compiled or both (comma-separated)")
    parser.add_argument(
        "--trial",
        default=None,
        metavar="WORKLOAD",
        help="measure the arena's recording on one trial of this workload instead",
    )
    args = parser.parse_args()
    if args.trial:
        names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
        trial_costs(args.trial, names, args.rounds, args.threads)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    values = make_param_set(args.params)
    print(
        f"{args.params}: {values.preset.elements:,} parameters in {values.preset.tensors} tensors, "
        f"{torch.get_num_threads()} threads"
    )
    backends = {"eager": False, "compiled": True}
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in backends]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from eager, compiled")
    print(f"{'optimizer':<12}{'backend':<10}{'off ms':>10}{'on ms':>10}{'on/off':>9}")
    for name in [n.strip() for n in args.optimizers.split(",") if n.strip()]:
        for backend in chosen:
            runs = {}
            for recording in (False, True):
                settings = {**bench_settings(name), "fused": backends[backend]}
                optimizer = optarena.create(name, values.fresh(), **settings)
                if recording:
                    optimizer.record_signals(1)
                for _ in range(3):  # state, compilation
                    optimizer.step()
                runs[recording] = optimizer
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.rounds):
                for recording, optimizer in runs.items():
                    times[recording].append(timed(optimizer, args.steps))
            off, on = statistics.median(times[False]), statistics.median(times[True])
            print(f"{name:<12}{backend:<10}{off:>10.2f}{on:>10.2f}{on / off:>9.3f}", flush=True)
            del runs


if __name__ == "__main__":
    main()

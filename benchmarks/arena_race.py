"""Trials per minute of a race, and what a trial costs besides its own training and evaluation.

Runs ``optarena race`` (default: the README's race on digits-mlp) into a fresh store in a
temporary folder, then ``optarena report``, and prints the wall time of each, the training
and evaluation time the trials themselves recorded, and the store and report sizes. The
difference between the race's wall time and the trials' own time divided by the workers
is the engine's overhead: starting the race and its worker processes, building workloads,
writing SQLite.

Then it measures the fixed costs directly, in a fresh process started the way the race
starts a worker: the process start and imports, the first trial's set-up (data, the
optimizers' own imports), and for each later trial the time outside its training and
evaluation (model, optimizer, result) plus the time to store it.

    python benchmarks/arena_race.py
    python benchmarks/arena_race.py --workload digits-mlp --optimizers sgd,adam --trials 4 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README_OPTIMIZERS = "sgd,momentum,adam,adamw,radam,lamb,ranger,adabound"
PROBE_TRIALS = 16


def race_and_report(args: argparse.Namespace) -> None:
    """The end-to-end figures: the race's wall time against the trials' own time."""
    with tempfile.TemporaryDirectory() as folder:
        db, html = Path(folder) / "runs.sqlite", Path(folder) / "report.html"
        race = [
            *(sys.executable, "-m", "optarena", "race", "--workload", args.workload),
            *("--optimizers", args.optimizers, "--trials", args.trials, "--seeds", args.seeds),
            *("--db", str(db)),
        ]
        if args.workers:
            race += ["--workers", args.workers]
        if args.quick:
            race.append("--quick")
        start = time.perf_counter()
        subprocess.run(race, check=True, stdout=subprocess.DEVNULL)
        race_seconds = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "optarena", "report", "--db", str(db), "--out", str(html)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        report_seconds = time.perf_counter() - start

        connection = sqlite3.connect(db)
        trials, train, evaluation, threads = connection.execute(
            "SELECT COUNT(*), SUM(train_seconds), SUM(eval_seconds), MAX(threads) FROM trials"
        ).fetchone()
        metrics = connection.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        connection.close()
        workers = int(args.workers) if args.workers else len(os.sched_getaffinity(0))
        print(f"race: {' '.join(race[3:-2])}")
        print(f"trials: {trials} ({metrics} metric rows), {workers} workers x {threads} thread(s)")
        print(f"race wall time: {race_seconds:.1f} s")
        print(
            f"  trials' own time: {train:.1f} s training + {evaluation:.1f} s evaluation "
            f"= {(train + evaluation) / workers:.1f} s per worker"
        )
        overhead = race_seconds - (train + evaluation) / workers
        print(f"  everything else (race and worker start-up, workloads, store): {overhead:.1f} s")
        per_trial = (train + evaluation) / trials
        fixed = overhead * workers / trials
        print(f"throughput: {trials / race_seconds * 60:.1f} trials per minute")
        print(
            f"race overhead per trial: {fixed:.3f} s against {per_trial:.3f} s of training and evaluation "
            f"({fixed / per_trial:.1%} of a trial)"
        )
        print(
            f"report: {report_seconds:.1f} s, {html.stat().st_size / 1024:.0f} KiB; store {db.stat().st_size / 1024:.0f} KiB"
        )


def breakdown(args: argparse.Namespace) -> None:
    """The fixed costs measured in a fresh process (see :func:`probe`), printed."""
    launched = time.time()
    command = [sys.executable, __file__, "--probe", str(launched), "--workload", args.workload]
    command += ["--optimizers", args.optimizers, "--trials", args.trials, "--seeds", args.seeds]
    if args.quick:
        command.append("--quick")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    own = figures["own"]
    steady = figures["outside"] + figures["store"]
    print(f"fixed costs, measured in a fresh process ({figures['trials']} trials on 1 thread):")
    print(f"  process start: {figures['start']:.2f} s, imports: {figures['imports']:.2f} s (once per worker)")
    print(f"  first trial's set-up (data, the optimizers' imports): {figures['first']:.2f} s (once per worker)")
    print(
        f"  each later trial: {1000 * figures['outside']:.1f} ms outside training and evaluation "
        f"+ {1000 * figures['store']:.1f} ms to store it"
    )
    print(
        f"fixed cost per trial: {1000 * steady:.1f} ms against {own:.3f} s of training and evaluation "
        f"({steady / own:.1%} of a trial; target under 10%)"
    )


def probe(args: argparse.Namespace) -> None:
    """Run in a fresh process: the time to start, to import what a worker imports, to set up the
    first trial, and for later trials the time outside their own training and evaluation."""
    started = time.time() - float(args.probe)
    clock = time.perf_counter()
    import optarena.arena.executors  # noqa: F401 - what a worker process imports first

    imports = time.perf_counter() - clock
    from dataclasses import replace

    from optarena.arena.race import RaceConfig, make_plan
    from optarena.arena.store import Store
    from optarena.arena.trial import run_trial

    options = {"quick": True} if args.quick else {}
    config = RaceConfig((args.workload,), tuple(args.optimizers.split(",")), int(args.trials), options=options)
    plan = make_plan(config)
    per_study = [[role.spec for role in study.next_trials()] for study in plan.studies]
    specs = [replace(s, threads=1) for round_ in zip(*per_study) for s in round_][: PROBE_TRIALS + 1]
    outside, own, results = [], [], []
    for spec in specs:
        clock = time.perf_counter()
        result = run_trial(spec)
        outside.append(time.perf_counter() - clock - result.train_seconds - result.eval_seconds)
        own.append(result.train_seconds + result.eval_seconds)
        results.append(result)
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "runs.sqlite") as store:
        for planned in plan.workloads:
            store.add_workload(planned.row())
        for study in plan.studies:
            store.add_study(study.row())
        clock = time.perf_counter()
        for spec, result in zip(specs[1:], results[1:], strict=True):
            store.save_trial(result.row(spec), result.metrics, [])
        storing = (time.perf_counter() - clock) / (len(specs) - 1)
    later = len(specs) - 1
    figures = {
        "trials": len(specs),
        "start": started,
        "imports": imports,
        "first": outside[0],
        "outside": sum(outside[1:]) / later,
        "store": storing,
        "own": sum(own[1:]) / later,
    }
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits-mlp")
    parser.add_argument("--optimizers", default=README_OPTIMIZERS)
    parser.add_argument("--trials", default="8")
    parser.add_argument("--seeds", default="3")
    parser.add_argument("--workers", default=None, help="default: the race's default (one per core)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-race", action="store_true", help="only the fixed costs, not the whole race")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args)
        return
    print(f"machine: {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f} at the start")
    if not args.no_race:
        race_and_report(args)
    breakdown(args)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()

"""Wall time of a race and its report, and how much of it the arena itself costs.

Runs ``optarena race`` (default: the README's race on digits-mlp) into a fresh store in a
temporary folder, then ``optarena report``, and prints the wall time of each, the training
and evaluation time the trials themselves recorded, and the store and report sizes. The
difference between the race's wall time and the trials' own time divided by the workers
is the engine's overhead: starting worker processes, building workloads, writing SQLite.

    python benchmarks/arena_race.py
    python benchmarks/arena_race.py --workload digits-mlp --optimizers sgd,adam --trials 4 --seeds 2
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README_OPTIMIZERS = "sgd,momentum,adam,adamw,radam,lamb,ranger,adabound"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits-mlp")
    parser.add_argument("--optimizers", default=README_OPTIMIZERS)
    parser.add_argument("--trials", default="8")
    parser.add_argument("--seeds", default="3")
    parser.add_argument("--workers", default=None, help="default: the race's default (one per core)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        db, html = Path(folder) / "runs.sqlite", Path(folder) / "report.html"
        race = [
            sys.executable,
            "-m",
            "optarena",
            "race",
            "--workload",
            args.workload,
            "--optimizers",
            args.optimizers,
            "--trials",
            args.trials,
            "--seeds",
            args.seeds,
            "--db",
            str(db),
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
        print(f"machine: {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f} at the end")
        print(f"trials: {trials} ({metrics} metric rows), {workers} workers x {threads} thread(s)")
        print(f"race wall time: {race_seconds:.1f} s")
        print(
            f"  trials' own time: {train:.1f} s training + {evaluation:.1f} s evaluation "
            f"= {(train + evaluation) / workers:.1f} s per worker"
        )
        overhead = race_seconds - (train + evaluation) / workers
        print(f"  everything else (startup, workloads, store): {overhead:.1f} s")
        per_trial = (train + evaluation) / trials
        fixed = overhead * workers / trials
        print(f"throughput: {trials / race_seconds * 60:.1f} trials per minute")
        print(
            f"fixed cost per trial: {fixed:.3f} s against {per_trial:.3f} s of training and evaluation "
            f"({fixed / per_trial:.1%} of a trial; target under 10%)"
        )
        print(
            f"report: {report_seconds:.1f} s, {html.stat().st_size / 1024:.0f} KiB; store {db.stat().st_size / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()

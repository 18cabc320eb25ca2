"""``optarena race`` and ``optarena report``: the arena's command line.

    optarena race --workload digits-mlp --optimizers sgd,momentum,adam,adamw,radam \\
        --trials 8 --seeds 3 --db runs.sqlite
    optarena report --db runs.sqlite --out report.html
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from optarena.cli_types import names, shown, threads, whole, wide_console

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "radam", "lamb", "ranger", "adabound")
DEFAULT_TRIALS, DEFAULT_SEEDS = 8, 3
QUICK_TRIALS, QUICK_SEEDS = 4, 2
DEFAULT_DB = "runs.sqlite"


def add_command(commands: Any) -> None:
    """Register ``race`` and ``report`` on the ``optarena`` subparsers."""
    from optarena.arena.executors import EXECUTORS
    from optarena.arena.race import MAX_SEEDS, TUNE_CHOICES
    from optarena.arena.workloads import available_workloads
    from optarena.tuning import MAX_BUDGET, STRATEGIES

    builtin = ", ".join(info.name for info in available_workloads())

    race = commands.add_parser(
        "race",
        help="tune and race optimizers on workloads, storing every trial in SQLite",
        description="Tune every optimizer with the same budget on each workload, rerun each one's best "
        "configuration over fresh seeds, and print a leaderboard. Trials already in the store are reused, "
        "so rerunning a finished or interrupted race only runs what is missing.",
    )
    race.add_argument(
        "--workload",
        required=True,
        type=names,
        metavar="NAMES",
        help=f"comma-separated workloads: built-in ({builtin}) or package.module:factory",
    )
    race.add_argument(
        "--optimizers",
        type=names,
        default=list(DEFAULT_OPTIMIZERS),
        metavar="NAMES",
        help=f"comma-separated registry names (default: {','.join(DEFAULT_OPTIMIZERS)})",
    )
    race.add_argument(
        "--trials",
        type=whole(1, MAX_BUDGET),
        default=None,
        help=f"tuning trials per optimizer, 1 to {MAX_BUDGET} (default {DEFAULT_TRIALS}; {QUICK_TRIALS} with --quick)",
    )
    race.add_argument(
        "--seeds",
        type=whole(1, MAX_SEEDS),
        default=None,
        help=f"seeds the best configuration is rerun on, 1 to {MAX_SEEDS} (default {DEFAULT_SEEDS}; "
        f"{QUICK_SEEDS} with --quick)",
    )
    race.add_argument("--db", default=DEFAULT_DB, help=f"result store, created if missing (default {DEFAULT_DB})")
    race.add_argument(
        "--search",
        choices=STRATEGIES,
        default="quasi-random",
        help="quasi-random (scrambled Halton, all trials in parallel; default) or tpe (Optuna)",
    )
    race.add_argument(
        "--tune",
        choices=TUNE_CHOICES,
        default="all",
        help="all: every hyperparameter the optimizer declares tunable (default); lr: the learning rate only",
    )
    race.add_argument(
        "--quick", action="store_true", help="a short race: the workloads' quick budget and fewer trials and seeds"
    )
    race.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: a process pool (default); inline: this process; ray: a Ray cluster",
    )
    race.add_argument(
        "--workers",
        type=threads,
        default=None,
        help="trials at once (default: the cores here; with ray, the cluster's CPUs)",
    )
    race.add_argument(
        "--threads", type=threads, default=None, help="torch threads per trial (default: cores / workers, at least 1)"
    )
    race.add_argument(
        "--address",
        default=None,
        help="with --executor ray: 'local' (default) starts Ray here; 'auto' or ray://host:port joins a cluster",
    )
    race.add_argument("--data-dir", default=None, help="where workloads on real data read their files")
    race.add_argument(
        "--no-signals",
        dest="signals",
        action="store_false",
        help="do not record the optimizers' signals (trust ratios, rectification, bounds, ...) at "
        "each evaluation; they are recorded by default (docs/diagnostics.md)",
    )
    race.add_argument(
        "--sharpness",
        action="store_true",
        help="also measure the sharpness (the Hessian's top eigenvalue on a fixed batch of 256 "
        "training examples) at each evaluation: a few Hessian-vector products each, off by default",
    )
    race.add_argument(
        "--spectrum",
        action="store_true",
        help="also store the Hessian's eigenvalue density (stochastic Lanczos quadrature on the same batch) "
        "at each trial's first and last evaluation, for the report to draw; off by default",
    )
    from optarena.arena.algoperf_command import add_race_arguments

    add_race_arguments(race)
    race.set_defaults(run=run_race_command)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report of the races in a result store",
        description="Leaderboards, training curves with seed bands, learning-rate sensitivity, expected best "
        "after k trials and the performance profile, in one HTML file that works offline.",
    )
    report.add_argument("--db", default=DEFAULT_DB, help=f"result store to read (default {DEFAULT_DB})")
    report.add_argument("--out", default="report.html", help="HTML file to write (default report.html)")
    report.add_argument("--workload", default=None, help="only this workload (its name or spec)")
    report.add_argument(
        "--claims",
        default=None,
        metavar="DIR",
        help="add the claims page from DIR (written by optarena claims --out DIR)",
    )
    report.set_defaults(run=run_report_command)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _error(command: str, message: str, status: int) -> int:
    print(f"optarena {command}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def leaderboard_table(workload: Any) -> Any:
    """A rich table of the workload's leaderboard (the same numbers as the report)."""
    from rich.table import Table

    from optarena.arena.scoring import leaderboard
    from optarena.arena.trial import format_value

    target = workload.target
    relation = ">=" if target.mode == "max" else "<="
    table = Table(
        title=shown(f"{workload.label}: final {target.metric} (target {relation} {target.value:g})"),
        caption="final: mean ± sd over the reruns; reached: reruns at the target; steps: their median steps "
        "to it; diverged: tuning trials, reruns",
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("optimizer", no_wrap=True)
    for name in ("final", "reached", "steps", "diverged"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("tuned", overflow="fold")
    for row in leaderboard(workload):
        final = f"{row.final_mean:.4g} ± {row.final_std:.2g}" if row.final_mean is not None else "diverged"
        steps = "never" if math.isinf(row.steps_to_target) else f"{row.steps_to_target:g}"
        tuned = row.study.tuned(row.hyperparameters)
        table.add_row(
            str(row.rank),
            shown(row.optimizer + ("" if row.complete else " (incomplete)")),
            final,
            f"{row.reached}/{row.seeds}",
            steps,
            f"{row.tuning_diverged}/{row.tuning_trials}, {row.diverged}/{row.seeds}",
            shown("\n".join(f"{k}={format_value(v)}" for k, v in tuned.items()) or "–"),
        )
    return table


def run_race_command(args: argparse.Namespace) -> int:
    from optarena.arena.executors import make_executor
    from optarena.arena.race import RaceConfig, RaceError, make_plan, run_race
    from optarena.arena.results import load_results
    from optarena.arena.store import Store, StoreError

    if getattr(args, "protocol", "tune-rerun") == "algoperf":
        from optarena.arena.algoperf_command import run_algoperf_command

        if getattr(args, "sharpness", False) or getattr(args, "spectrum", False) or not getattr(args, "signals", True):
            return _error(
                "race",
                "--sharpness, --spectrum and --no-signals are for --protocol tune-rerun: AlgoPerf trials "
                "record no diagnostics, their training time is the score",
                2,
            )

        return run_algoperf_command(args)
    for option in ("studies", "held_out", "held_out_seed"):
        if getattr(args, option, None) not in (None, False):
            return _error("race", f"--{option.replace('_', '-')} is for --protocol algoperf", 2)
    if getattr(args, "ruleset", "external") != "external" or getattr(args, "seed", 0) != 0:
        return _error("race", "--ruleset and --seed are for --protocol algoperf", 2)
    console = wide_console()
    options = {"quick": True} if args.quick else {}
    config = RaceConfig(
        workloads=tuple(args.workload),
        optimizers=tuple(args.optimizers),
        trials=args.trials or (QUICK_TRIALS if args.quick else DEFAULT_TRIALS),
        seeds=args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS),
        search=args.search,
        tune=args.tune,
        options=options,
        data_dir=args.data_dir,
        signals=args.signals,
        sharpness=args.sharpness,
        spectrum=args.spectrum,
    )
    if args.address is not None and args.executor != "ray":
        return _error("race", "--address is for the ray executor: add --executor ray", 2)
    if args.workers is not None and args.executor == "inline":
        return _error("race", "--workers does not apply to --executor inline, which runs one trial at a time", 2)
    try:
        plan = make_plan(config)
    except (ValueError, TypeError, ImportError) as error:
        return _error("race", str(error), 2)
    try:
        store = Store(args.db)
    except StoreError as error:
        return _error("race", str(error), error.status)

    started = time.perf_counter()
    with store:
        try:
            executor = make_executor(args.executor, args.workers, args.threads, args.address)
        except (ValueError, ImportError) as error:
            return _error("race", str(error), 2)
        if getattr(args, "budget", False):
            _print_budget(console, plan, executor, config.data_dir)
            executor.shutdown()
            return 0
        try:
            # The workers start, import and load the data while the budget is measured here.
            executor.prepare([study.warm_up_spec() for study in plan.studies])
            _print_budget(console, plan, executor, config.data_dir)
        except BaseException:  # Ctrl-C while measuring: the workers just started are not waited for
            executor.shutdown(now=True)
            raise
        names = ", ".join(s.entry.name for s in plan.studies if s.planned is plan.workloads[0])
        labels = ", ".join(p.workload.name for p in plan.workloads)
        console.print(
            shown(
                f"Racing {_count(len(config.optimizers), 'optimizer')} ({names}) on {labels}: {config.search} search, "
                f"{_count(config.trials, 'trial')} each, the best rerun on {_count(config.seeds, 'seed')}; "
                f"{plan.total} trials, {executor.describe()}; store {args.db}."
            )
        )
        finished = False
        try:
            outcome = _run_with_progress(console, plan, store, executor, run_race)
            finished = True
        except RaceError as error:
            return _error(
                "race",
                f"{error}. The trials finished before it are stored in {args.db}; "
                "fix the cause and run the same command to resume.",
                1,
            )
        except StoreError as error:
            return _error("race", str(error), error.status)
        except KeyboardInterrupt:
            console.print(
                shown(f"Interrupted. Finished trials are stored in {args.db}; run the same command to resume.")
            )
            return 130
        finally:
            executor.shutdown(now=not finished)
        try:
            workloads = load_results(store)
        except StoreError as error:
            return _error("race", str(error), error.status)
        for workload in workloads:
            if any(w.key == workload.key for w in plan.workloads):
                console.print(leaderboard_table(workload))
    wall = time.perf_counter() - started
    console.print(
        shown(
            f"{outcome.ran} trials run, {outcome.reused} reused from {args.db}"
            + (f", {outcome.diverged} diverged" if outcome.diverged else "")
            + (f", {outcome.skipped} reruns skipped (every tuning trial diverged)" if outcome.skipped else "")
            + f"; {wall:.1f} s. Report: optarena report --db {args.db} --out report.html"
        )
    )
    return 0


def _print_budget(console: Any, plan: Any, executor: Any, data_dir: str | None) -> None:
    """The race's estimated duration: trials x steps x the step time measured here."""
    from rich.text import Text

    from optarena.arena.budget import estimate, measure

    counts: dict[str, int] = {}
    for study in plan.studies:
        counts[study.planned.key] = counts.get(study.planned.key, 0) + study.planned_trials
    options = dict(plan.config.options)
    try:
        costs = [(measure(p.spec, options, data_dir, threads=executor.threads), counts[p.key]) for p in plan.workloads]
    except Exception as error:  # the race itself reports a failing workload, trial by trial
        console.print(Text(f"Budget: not estimated ({type(error).__name__}: {error})."))
        return
    console.print(Text(estimate(costs, executor.workers).describe()))  # names as typed, never markup


def _run_with_progress(console: Any, plan: Any, store: Any, executor: Any, run_race: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("racing", total=plan.total)

        def on_trial(role: Any, status: str, final: float | None, reused: bool) -> None:
            metric = role.study.planned.workload.target.metric
            outcome = "diverged" if status == "diverged" else f"{metric} {final:.4g}"
            where = "stored" if reused else "ran"
            phase = (
                f"trial {role.number + 1}/{role.study.config.trials}" if role.phase == "tune" else f"seed {role.number}"
            )
            progress.update(task, advance=1, description=f"{role.study.entry.name} {phase}: {outcome} ({where})")

        def on_skip(count: int) -> None:
            progress.update(task, advance=count)

        outcome = run_race(plan, store, executor, on_trial=on_trial, on_skip=on_skip)
        progress.update(task, description="done")
    return outcome


def run_report_command(args: argparse.Namespace) -> int:
    from optarena.arena.report import write_report
    from optarena.arena.store import StoreError
    from optarena.files import OutputError

    try:
        path = write_report(args.db, args.out, args.workload, claims=args.claims)
    except StoreError as error:
        return _error("report", str(error), error.status)
    except OutputError as error:
        return _error("report", str(error), 2)
    except ValueError as error:
        return _error("report", str(error), 1)
    except OSError as error:
        return _error("report", f"cannot write {args.out!r}: {error.strerror or error}", 1)
    print(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB). Open it in a browser; it needs no network.")
    return 0

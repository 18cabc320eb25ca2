"""``optarena race --protocol algoperf`` and ``optarena targets``: the command line of the AlgoPerf protocol.

    optarena targets --workload mnist1d-mlp,mnist1d-cnn,char-lm --db runs.sqlite
    optarena race --protocol algoperf --workload mnist1d-mlp,mnist1d-cnn,char-lm \\
        --optimizers adamw,nadamw,nesterov,momentum,radam,lamb --studies 3 --trials 8 --db runs.sqlite
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from typing import Any

from optarena.cli_types import names, positive_int, wide_console

DEFAULT_STUDIES = 5  # AlgoPerf's; 3 gave unstable rankings (docs/arena.md)


def _error(command: str, message: str, status: int) -> int:
    print(f"optarena {command}: error: {message}", file=sys.stderr)
    return status


def add_race_arguments(race: Any) -> None:
    """The race command's AlgoPerf options."""
    from optarena.arena.algoperf import RULESETS

    group = race.add_argument_group("AlgoPerf protocol (--protocol algoperf; docs/arena.md)")
    group.add_argument(
        "--protocol",
        choices=("tune-rerun", "algoperf"),
        default="tune-rerun",
        help="tune-rerun: tune, then rerun the best on fresh seeds (default); algoperf: time to "
        "stored targets, studies of trials, benchmark score",
    )
    group.add_argument(
        "--ruleset",
        choices=RULESETS,
        default="external",
        help="external: --studies studies of --trials trials from each optimizer's search space "
        "(default); self: the defaults only, on 1.5x the step budget",
    )
    group.add_argument(
        "--studies",
        type=positive_int,
        default=None,
        help=f"independent studies (seeds) per optimizer and workload (default {DEFAULT_STUDIES})",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        help="study s runs on seed SEED + s (default 0); another seed gives an independent race",
    )
    group.add_argument(
        "--held-out",
        action="store_true",
        help="also race one held-out variant per workload, drawn now (its target is set first)",
    )
    group.add_argument(
        "--held-out-seed",
        type=int,
        default=None,
        help="the seed that draws the held-out variants (default: a fresh one, printed)",
    )
    group.add_argument(
        "--budget", action="store_true", help="print the estimated time of the race and stop without running it"
    )


def add_targets_command(commands: Any) -> None:
    """Register ``optarena targets``."""
    from optarena.arena.command import DEFAULT_DB
    from optarena.arena.executors import EXECUTORS
    from optarena.arena.targets import BASELINES, DEFAULT_SEEDS, DEFAULT_TRIALS

    parser = commands.add_parser(
        "targets",
        help="set workloads' targets by racing the baseline set (AdamW, NAdamW, Nesterov, momentum)",
        description="Race the baselines on each workload's fixed budget (tuning on seed 0, the best rerun on fresh "
        "seeds) and store as its target the best baseline's median over reruns of the best value reached. "
        "`optarena race --protocol algoperf` uses the stored targets. Without --workload, list them.",
    )
    parser.add_argument(
        "--workload",
        type=names,
        default=None,
        metavar="NAMES",
        help="comma-separated workloads to set targets for (default: list the stored targets)",
    )
    parser.add_argument(
        "--trials",
        type=positive_int,
        default=DEFAULT_TRIALS,
        help=f"tuning trials per baseline (default {DEFAULT_TRIALS})",
    )
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULT_SEEDS,
        help=f"reruns of each baseline's best configuration (default {DEFAULT_SEEDS})",
    )
    parser.add_argument("--quick", action="store_true", help="the workloads' quick budget")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"result store (default {DEFAULT_DB})")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="where trials run (default local)")
    parser.add_argument("--workers", type=positive_int, default=None, help="trials at once")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads per trial")
    parser.add_argument("--address", default=None, help="with --executor ray: the cluster")
    parser.add_argument("--data-dir", default=None, help="where workloads on real data read their files")
    parser.set_defaults(run=run_targets_command, baselines=BASELINES)


def _targets_table(targets: list[Any]) -> Any:
    from rich.table import Table

    table = Table(
        title="stored targets",
        show_edge=False,
        pad_edge=False,
        caption="target: the best baseline's median (over reruns) of the best value during a run",
    )
    for column in ("workload", "options", "version", "steps", "target", "set by", "baselines"):
        table.add_column(column, justify="right" if column in ("steps", "target") else "left", overflow="fold")
    for t in targets:
        relation = ">=" if t.mode == "max" else "<="
        baselines = ", ".join(f"{k} {'diverged' if v is None else format(v, '.4g')}" for k, v in t.baselines.items())
        options = " ".join(f"{k}={v}" for k, v in t.options.items()) or "–"
        table.add_row(
            t.workload, options, t.version, str(t.steps), f"{t.metric} {relation} {t.value:.4g}", t.baseline, baselines
        )
    return table


def run_targets_command(args: argparse.Namespace) -> int:
    from optarena.arena.executors import make_executor
    from optarena.arena.race import RaceError
    from optarena.arena.store import Store, StoreError
    from optarena.arena.targets import all_targets

    console = wide_console()
    try:
        store = Store(args.db, create=args.workload is not None)
    except StoreError as error:
        return _error("targets", str(error), 2)
    with store:
        if args.workload is None:
            targets = all_targets(store)
            if not targets:
                console.print(
                    f"No targets stored in {args.db}: set them with `optarena targets --workload NAMES`.", markup=False
                )
                return 0
            console.print(_targets_table(targets), markup=False)
            return 0
        options = {"quick": True} if args.quick else {}
        try:
            executor = make_executor(args.executor, args.workers, args.threads, args.address)
        except (ValueError, ImportError) as error:
            return _error("targets", str(error), 2)
        console.print(
            f"Setting targets on {', '.join(args.workload)}: {', '.join(args.baselines)}, {args.trials} "
            f"trials each, the best rerun on {args.seeds} seeds; {executor.describe()}; store {args.db}.",
            markup=False,
        )
        finished = False
        try:
            targets = _set_with_progress(console, store, executor, args.workload, options, args)
            finished = True
        except (ValueError, TypeError, ImportError) as error:
            return _error("targets", str(error), 2)
        except RaceError as error:
            return _error(
                "targets", f"{error}. Finished trials are stored in {args.db}; run the same command to resume.", 1
            )
        except KeyboardInterrupt:
            console.print(
                f"Interrupted. Finished trials are stored in {args.db}; run the same command to resume.", markup=False
            )
            return 130
        finally:
            executor.shutdown(now=not finished)
        console.print(_targets_table(targets), markup=False)
    return 0


def _set_with_progress(
    console: Any, store: Any, executor: Any, workloads: list[str], options: dict[str, Any], args: Any
) -> list[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from optarena.arena.targets import set_targets

    trials_total = len(workloads) * len(args.baselines) * (args.trials + args.seeds)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("baselines", total=trials_total)

        def on_trial(role: Any, status: str, final: float | None, reused: bool) -> None:
            progress.update(task, advance=1, description=f"{role.study.entry.name} on {role.study.planned.spec}")

        return set_targets(
            store,
            executor,
            workloads,
            options=options,
            trials=args.trials,
            seeds=args.seeds,
            data_dir=args.data_dir,
            baselines=args.baselines,
            on_trial=on_trial,
        )


def score_tables(table: Any) -> Any:
    """A rich table of one AlgoPerf score table."""
    from rich.table import Table

    unit = "steps" if table.measure == "steps" else "s"
    out = Table(
        title=f"AlgoPerf benchmark score by {table.measure} ({table.ruleset} tuning, {table.studies} studies)",
        caption=f"score: area under rho(tau), tau in [1, 4], normalised; [90% bootstrap interval over studies]. "
        f"Per workload: median over studies of the fastest trial's {table.measure} to the target (never: missed)"
        + ("; seconds count training only" if table.measure == "seconds" else ""),
        show_edge=False,
        pad_edge=False,
    )
    out.add_column("#", justify="right")
    out.add_column("optimizer", no_wrap=True)
    out.add_column("score", justify="right", no_wrap=True)
    for label in table.workloads:
        out.add_column(label, justify="right", overflow="fold")
    for row in table.rows:
        cells = []
        for label in table.workloads:
            t = row.times[label]
            shown = "never" if math.isinf(t.value) else f"{t.value:.4g} {unit}"
            cells.append(f"{shown} ({row.reached[label]})")
        out.add_row(
            str(row.rank), row.optimizer, f"{row.score.value:.3f} [{row.score.low:.2f}, {row.score.high:.2f}]", *cells
        )
    return out


def run_algoperf_command(args: argparse.Namespace) -> int:
    import secrets

    from optarena.arena.algoperf import (
        AlgoPerfConfig,
        MissingTarget,
        find_target,
        make_algoperf_plan,
        missing_variant_targets,
    )
    from optarena.arena.algoperf_scoring import load_algoperf, score_table
    from optarena.arena.budget import estimate, measure
    from optarena.arena.command import DEFAULT_TRIALS, QUICK_TRIALS, _run_with_progress
    from optarena.arena.executors import make_executor
    from optarena.arena.race import RaceError, run_race
    from optarena.arena.store import Store, StoreError
    from optarena.arena.targets import set_targets

    console = wide_console()
    if args.seeds is not None:
        return _error(
            "race", "--seeds is for the tune-rerun protocol; the algoperf protocol's seeds are its --studies", 2
        )
    if args.search != "quasi-random" or args.tune != "all":
        return _error(
            "race",
            "the algoperf protocol draws every optimizer's declared search space quasi-randomly: "
            "leave out --search and --tune",
            2,
        )
    if args.seed < 0 or (args.held_out_seed is not None and args.held_out_seed < 0):
        return _error("race", "--seed and --held-out-seed must be whole numbers >= 0", 2)
    held_out_seed = args.held_out_seed if args.held_out_seed is not None else secrets.randbelow(1_000_000)
    config = AlgoPerfConfig(
        workloads=tuple(args.workload),
        optimizers=tuple(args.optimizers),
        ruleset=args.ruleset,
        studies=args.studies or DEFAULT_STUDIES,
        trials=args.trials or (QUICK_TRIALS if args.quick else DEFAULT_TRIALS),
        seed=args.seed,
        held_out=args.held_out,
        held_out_seed=held_out_seed,
        options={"quick": True} if args.quick else {},
        data_dir=args.data_dir,
    )
    try:
        config.check()
        store = Store(args.db)
    except ValueError as error:
        return _error("race", str(error), 2)
    except StoreError as error:
        return _error("race", str(error), 2)
    started = time.perf_counter()
    with store:
        try:
            executor = make_executor(args.executor, args.workers, args.threads, args.address)
        except (ValueError, ImportError) as error:
            return _error("race", str(error), 2)
        finished = False
        try:
            try:
                for spec in config.workloads:  # every base workload needs its stored target
                    find_target(store, spec, dict(config.options), config.data_dir)
                missing = missing_variant_targets(config, store)
                plan = make_algoperf_plan(config, store) if not missing else None
            except MissingTarget as error:
                return _error("race", str(error), 2)
            except (ValueError, TypeError, ImportError) as error:
                return _error("race", str(error), 2)
            if config.held_out:
                console.print(
                    f"Held-out variants drawn with seed {held_out_seed} (--held-out-seed {held_out_seed} "
                    "repeats them).",
                    markup=False,
                )
            for spec, variant in missing:
                base = find_target(store, spec, dict(config.options), config.data_dir)
                console.print(
                    f"Setting the target of the held-out variant {spec} {variant} with the baselines "
                    f"({base.trials} trials, {base.seeds} reruns each, as for its base workload).",
                    markup=False,
                )
                if not args.budget:
                    set_targets(
                        store,
                        executor,
                        [spec],
                        options=variant,
                        data_dir=config.data_dir,
                        trials=base.trials,
                        seeds=base.seeds,
                    )
            if missing and args.budget:
                console.print(
                    "(the held-out variants' targets are not set yet: the estimate leaves them out)", markup=False
                )
                config = dataclasses.replace(config, held_out=False)
            if plan is None:
                plan = make_algoperf_plan(config, store)
            counts = plan.trials_per_workload()
            try:
                costs = [
                    (measure(p.spec, p.options, config.data_dir, threads=executor.threads), counts[p.key])
                    for p in plan.workloads
                ]
                console.print(estimate(costs, executor.workers).describe(), markup=False)
            except Exception as error:  # the race reports a failing workload, trial by trial
                console.print(f"Budget: not estimated ({type(error).__name__}: {error}).", markup=False)
            if args.budget:
                finished = True
                return 0
            entries = ", ".join(dict.fromkeys(s.entry.name for s in plan.studies))
            rules = (
                f"{config.studies} studies of {config.trials} trials from each optimizer's search space"
                if config.ruleset == "external"
                else f"defaults on 1.5x the budget, {config.studies} seeds"
            )
            console.print(
                f"AlgoPerf race, {config.ruleset} tuning: {entries} on "
                f"{', '.join(p.workload.name + (' (held out)' if p.base else '') for p in plan.workloads)}; "
                f"{rules}; {plan.total} trials, {executor.describe()}; store {args.db}.",
                markup=False,
            )
            for p in plan.workloads:
                t = plan.targets[p.key]
                relation = ">=" if t.mode == "max" else "<="
                console.print(
                    f"  target {p.workload.name}: {t.metric} {relation} {t.value:.4g} (set by {t.baseline})",
                    markup=False,
                )
            outcome = _run_with_progress(console, plan, store, executor, run_race)
            finished = True
        except RaceError as error:
            return _error(
                "race",
                f"{error}. The trials finished before it are stored in {args.db}; "
                "fix the cause and run the same command to resume.",
                1,
            )
        except KeyboardInterrupt:
            console.print(
                f"Interrupted. Finished trials are stored in {args.db}; run the same command to resume.", markup=False
            )
            return 130
        finally:
            executor.shutdown(now=not finished)
        results = [r for r in load_algoperf(store, config.ruleset) if r.key in {p.key for p in plan.workloads}]
        for measure_name in ("steps", "seconds"):
            console.print(score_tables(score_table(results, measure_name, config.ruleset)), markup=False)
    console.print(
        f"{outcome.ran} trials run, {outcome.reused} reused from {args.db}"
        + (f", {outcome.diverged} diverged" if outcome.diverged else "")
        + f"; {time.perf_counter() - started:.1f} s. Report: optarena report --db {args.db} --out report.html",
        markup=False,
    )
    return 0

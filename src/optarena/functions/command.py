"""The ``optarena trajectories`` and ``optarena nqm`` subcommands.

optarena trajectories --function rosenbrock --steps 500 --out rosenbrock.png [--animate rosenbrock.gif]
optarena nqm --out nqm.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from optarena.checks import fits_in_memory
from optarena.cli_types import names as name_list
from optarena.cli_types import output, real, shown, threads, torch_threads, whole, wide_console
from optarena.tuning import MAX_BUDGET

DEFAULT_TRAJECTORY_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "radam", "ranger")
"""The optimizers ``trajectories`` draws by default; names not registered (yet) are left out."""


def _fail(command: str, message: str) -> int:
    print(f"optarena {command}: {message}", file=sys.stderr)
    return 2


# -- trajectories ------------------------------------------------------------------------------


def default_optimizers() -> tuple[list[str], list[str]]:
    """``(registered, missing)`` names of :data:`DEFAULT_TRAJECTORY_OPTIMIZERS`."""
    from optarena.registry import REGISTRY

    registered = [n for n in DEFAULT_TRAJECTORY_OPTIMIZERS if n in REGISTRY]
    return registered, [n for n in DEFAULT_TRAJECTORY_OPTIMIZERS if n not in REGISTRY]


def results_table(study: Any) -> Any:
    """The tuned values and held-out medians as a rich table."""
    from rich.table import Table

    table = Table(title=f"{getattr(study.function, 'label', study.function.name)}: tuned with the same budget")
    table.add_column("optimizer", no_wrap=True, style="bold")
    table.add_column("tuned", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("f-f*", justify="right")
    table.add_column("distance", justify="right")
    table.add_column("diverged", justify="right")
    table.add_column("start f-f*", justify="right")

    def number(value: float, spec: str) -> str:
        return format(value, spec) if math.isfinite(value) else "inf"

    for result in study.results:
        table.add_row(
            result.name,
            result.settings(),
            number(result.score, ".2f"),
            number(result.median_gap, ".2e"),
            number(result.median_distance, ".3g"),
            f"{result.diverged_fraction:.0%}",
            number(float(result.from_start.final_gap[0]), ".2e"),
        )
    return table


def _trajectories(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from optarena import functions
    from optarena.functions.fair_tuning import Budget, tune_all
    from optarena.functions.plots import trajectory_animation, trajectory_figure
    from optarena.registry import lookup

    console = wide_console()
    try:
        function = functions.get(args.function, noise=args.noise, seed=args.seed if args.noise is not None else None)
    except ValueError as error:
        return _fail("trajectories", str(error))
    if function.dim != 2:
        return _fail("trajectories", f"{function.name} is not two-dimensional")
    if args.optimizers is None:
        names, missing = default_optimizers()
        if missing:
            console.print(f"[dim]Not registered, left out of the default list: {', '.join(missing)}[/dim]")
    else:
        names = args.optimizers
    try:
        names = [lookup(name).name for name in names]
        budget = Budget(
            steps=args.steps,
            trials=args.trials,
            starts=args.starts,
            seeds=args.seeds,
            strategy=args.strategy,
            seed=args.seed,
            tune=args.tune,
            objective=args.objective,
            quantile=args.quantile,
        )
        fits_in_memory(
            f"{budget.steps} steps from {budget.starts} starts x {budget.seeds} seeds",
            (budget.steps + 1) * budget.starts * budget.seeds * (function.dim + 1) * 8 * 2,
            "lower --steps, --starts or --seeds",
        )
    except ValueError as error:
        return _fail("trajectories", str(error))
    if len(set(names)) != len(names):
        return _fail("trajectories", f"an optimizer is listed twice: {', '.join(names)}")

    console.print(
        f"Tuning {len(names)} optimizers on {getattr(function, 'label', function.name)}: {budget.trials} trials each, "
        f"{budget.steps} steps from {budget.starts} starts"
        + (f" x {budget.seeds} noise seeds" if args.noise is not None else "")
        + f", {'the learning rate' if budget.tune == 'lr' else 'every declared hyperparameter'}."
    )
    start = time.perf_counter()
    with (
        torch_threads(args.threads),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("tuning", total=len(names) * budget.trials)

        def on_trial(name: str, done: int, total: int) -> None:
            progress.update(task, advance=1, description=f"tuning {name}")

        try:
            study = tune_all(function, names, budget, on_trial)
        except (ImportError, ValueError) as error:  # 'tpe' without Optuna installed; a size out of range
            progress.stop()
            return _fail("trajectories", str(error))
    tuned = time.perf_counter() - start
    console.print(results_table(study))
    console.print(
        f"score: the tuning objective, the {budget.quantile:g} quantile of the final log10 "
        f"{'f-f*' if budget.objective == 'loss' else 'distance'} (lower is better). f-f*, distance: medians over "
        f"{budget.starts} held-out starts; diverged: their share. start f-f*: from {_point(function.start)}."
    )
    with torch_threads(args.threads):
        trajectory_figure(study, args.out, surface=not args.no_surface)
        console.print(shown(f"wrote {args.out}"), soft_wrap=True)
        if args.animate is not None:
            frames = trajectory_animation(study, args.animate, frames=args.frames)
            console.print(shown(f"wrote {args.animate} ({frames} frames)"), soft_wrap=True)
    console.print(f"Tuning took {tuned:.1f} s; total {time.perf_counter() - start:.1f} s.")
    return 0


def _point(values: Any) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


# -- nqm -----------------------------------------------------------------------------------------


def nqm_tables(report: Any) -> list[Any]:
    """The closed form against the simulations, and the batch-size sweep, as rich tables."""
    from rich.table import Table

    from optarena.functions.nqm_plot import method_label

    check = Table(title=f"NQM d={report.dim}, learning rate {report.lr:g}, batch size {report.batch_size:g}")
    check.add_column("method", no_wrap=True, style="bold")
    check.add_column("steady state", justify="right")
    check.add_column(f"expected loss at step {report.steps}", justify="right")
    check.add_column("simulated", justify="right")
    check.add_column("worst |sim - exact| / s.e.", justify="right")
    for method, curve in report.curves.items():
        sim = report.simulations[method]
        z = ((sim.mean[1:] - curve[1:]) / sim.stderr[1:]).abs()
        check.add_row(
            method_label(report, method),
            f"{report.steady[method]:.4g}",
            f"{float(curve[-1]):.4g}",
            f"{float(sim.mean[-1]):.4g}",
            f"{float(z.max()):.2f}",
        )
    sweep = Table(title=f"Steps to reach loss {report.target:.3g} (learning rate tuned per batch size)")
    sweep.add_column("batch size", justify="right")
    for result in report.sweep:
        sweep.add_column(result.method, justify="right")
        sweep.add_column("lr", justify="right", style="dim")
    for i, batch_size in enumerate(report.sweep[0].batch_sizes):
        row = [f"{batch_size:g}"]
        for result in report.sweep:
            steps, lr = result.steps[i], result.learning_rates[i]
            row += [f"{steps:.0f}" if math.isfinite(steps) else "never", f"{lr:.3g}" if math.isfinite(lr) else "-"]
        sweep.add_row(*row)
    return [check, sweep]


def _nqm(args: argparse.Namespace) -> int:
    from optarena.functions.nqm_plot import nqm_figure
    from optarena.functions.nqm_study import nqm_report

    console = wide_console()
    if args.max_batch_size < args.batch_size:
        return _fail("nqm", f"--max-batch-size ({args.max_batch_size}) is below --batch-size ({args.batch_size:g})")
    batch_sizes = [2.0**k for k in range(int(math.log2(args.max_batch_size)) + 1)]
    start = time.perf_counter()
    with torch_threads(args.threads), console.status("simulating and solving the noisy quadratic model"):
        try:
            report = nqm_report(
                dim=args.dim,
                lr=args.lr,
                batch_size=args.batch_size,
                steps=args.steps,
                runs=args.runs,
                seed=args.seed,
                batch_sizes=batch_sizes,
                target_fraction=args.target,
                momentum=args.momentum,
                k=args.k,
                alpha=args.alpha,
            )
        except ValueError as error:
            return _fail("nqm", str(error))
        for table in nqm_tables(report):
            console.print(table)
        nqm_figure(report, args.out)
    console.print(shown(f"wrote {args.out}"), soft_wrap=True)
    console.print(f"Total {time.perf_counter() - start:.1f} s.")
    return 0


# -- registration -------------------------------------------------------------------------------


def add_command(commands: Any) -> None:
    """Add ``trajectories`` and ``nqm`` to the ``optarena`` subcommands."""
    from optarena.functions import names

    trajectories = commands.add_parser(
        "trajectories",
        help="tune optimizers with the same budget on a 2-D test function and draw their paths",
        description=(
            "Tune each optimizer's learning rate (or every declared hyperparameter) with the same budget and "
            "the same quasi-random points over many start points, print the tuned values and held-out medians, "
            "and draw each tuned path from the common start on a contour and a 3-D surface."
        ),
    )
    trajectories.add_argument(
        "--function", default="rosenbrock", help=f"one of {', '.join(names())} (default rosenbrock)"
    )
    trajectories.add_argument(
        "--optimizers",
        type=name_list,
        default=None,
        metavar="NAMES",
        help=f"comma-separated registry names (default: {','.join(DEFAULT_TRAJECTORY_OPTIMIZERS)}, "
        "leaving out any not registered)",
    )
    trajectories.add_argument("--steps", type=whole(1), default=500, help="optimizer steps per run (default 500)")
    trajectories.add_argument(
        "--out",
        type=output(".png"),
        default=Path("trajectories.png"),
        help="the picture to write (default trajectories.png)",
    )
    trajectories.add_argument(
        "--animate", type=output(".gif"), default=None, metavar="GIF", help="also write an animation of the paths"
    )
    trajectories.add_argument("--frames", type=whole(2), default=100, help="animation frames (default 100)")
    trajectories.add_argument(
        "--trials",
        type=whole(1, MAX_BUDGET),
        default=24,
        help=f"tuning trials per optimizer, 1 to {MAX_BUDGET} (default 24)",
    )
    trajectories.add_argument("--starts", type=whole(1), default=32, help="random start points (default 32)")
    trajectories.add_argument(
        "--seeds", type=whole(1), default=1, help="noise seeds per start, with --noise (default 1)"
    )
    trajectories.add_argument(
        "--noise",
        type=real(0.0),
        default=None,
        metavar="SIGMA",
        help="add Gaussian gradient noise of this standard deviation",
    )
    trajectories.add_argument(
        "--strategy",
        choices=("quasi-random", "tpe"),
        default="quasi-random",
        help="quasi-random (scrambled Halton, default) or tpe (Optuna)",
    )
    trajectories.add_argument(
        "--tune",
        choices=("lr", "all"),
        default="lr",
        help="tune the learning rate only (default) or every declared hyperparameter",
    )
    trajectories.add_argument(
        "--objective",
        choices=("loss", "distance"),
        default="loss",
        help="final log10(f - f*) (default) or log10 distance to the nearest minimum",
    )
    trajectories.add_argument(
        "--quantile",
        type=real(0.0, 1.0),
        default=0.75,
        help="quantile over runs that scores a trial (default 0.75; 0.5 is the median)",
    )
    trajectories.add_argument("--seed", type=whole(0), default=0, help="seed for starts, points and noise (default 0)")
    trajectories.add_argument("--no-surface", action="store_true", help="draw the contour panel only")
    trajectories.add_argument("--threads", type=threads, default=1, help="torch threads (default 1)")
    trajectories.set_defaults(run=_trajectories)

    nqm = commands.add_parser(
        "nqm",
        help="the noisy quadratic model: closed-form expected loss vs simulation, and the batch-size effect",
        description=(
            "Expected loss of SGD, heavy-ball momentum and Lookahead(SGD) on the noisy quadratic model "
            "(Zhang et al. 2019) at one learning rate, checked against simulated runs, and the steps each "
            "needs to reach a target loss as the batch size grows."
        ),
    )
    nqm.add_argument(
        "--out", type=output(".png"), default=Path("nqm.png"), help="the picture to write (default nqm.png)"
    )
    nqm.add_argument("--dim", type=whole(1), default=100, help="coordinates, curvatures 1/i (default 100)")
    nqm.add_argument("--lr", type=real(0.0), default=0.5, help="learning rate of the left panel (default 0.5)")
    nqm.add_argument("--batch-size", type=real(0.0), default=4.0, help="batch size of the left panel (default 4)")
    nqm.add_argument("--steps", type=whole(1), default=1000, help="steps of the left panel (default 1000)")
    nqm.add_argument("--runs", type=whole(2), default=200, help="simulated runs per method (default 200)")
    nqm.add_argument(
        "--target",
        type=real(0.0, 1.0),
        default=0.01,
        help="the sweep's target as a fraction of the initial loss (default 0.01)",
    )
    nqm.add_argument(
        "--max-batch-size",
        type=real(1.0, low_open=False),
        default=16384.0,
        help="largest batch size of the sweep, powers of two from 1 (default 16384)",
    )
    nqm.add_argument(
        "--momentum", type=real(0.0, 1.0, low_open=False), default=0.9, help="heavy-ball momentum (default 0.9)"
    )
    nqm.add_argument("--k", type=whole(1), default=5, help="Lookahead's inner steps (default 5)")
    nqm.add_argument(
        "--alpha", type=real(0.0, 1.0, high_open=False), default=0.5, help="Lookahead's slow-weight step (default 0.5)"
    )
    nqm.add_argument("--seed", type=whole(0), default=0, help="seed of the simulations (default 0)")
    nqm.add_argument("--threads", type=threads, default=1, help="torch threads (default 1)")
    nqm.set_defaults(run=_nqm)

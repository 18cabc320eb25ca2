"""``optarena landscape``: train several optimizers from one start and draw their paths on the loss.

    optarena landscape --workload digits-mlp --optimizers sgd,adam,radam --grid 41 --out landscape.png

:func:`run_landscape` does the work and returns every array it drew; :func:`add_command`
registers the subcommand on the ``optarena`` parser.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from optarena.checks import whole_number
from optarena.cli_types import names, positive_int, real, shown, threads, torch_threads, wide_console
from optarena.files import check_output, files_under, write_atomically
from optarena.landscape.evaluate import ROWS_PER_CALL, loss_at
from optarena.landscape.path_landscape import PLANES, PathsLandscape, landscape_of_paths
from optarena.landscape.paths import Trajectory, train_paths
from optarena.landscape.plot import VIEWS, landscape_figure
from optarena.landscape.projection import CENTERS
from optarena.landscape.surface import MAX_GRID_POINTS, check_grid_size
from optarena.landscape.workloads import Workload, drawable_workloads, get_workload

DEFAULT_OPTIMIZERS = ("sgd", "adam", "radam")
DEFAULT_GRID = 41
CHECKPOINTS = 50
"""Checkpoints recorded per run unless ``record_every`` is given."""


@dataclass
class LandscapeRun:
    """What ``optarena landscape`` trained, evaluated and drew."""

    workload: Workload
    trajectories: list[Trajectory]
    landscape: PathsLandscape
    final_losses: dict[str, float]
    """Each run's loss at its final point on the evaluation batch (off the plane, exactly)."""
    evaluation_samples: int
    out: Path | None


def resolve_hyperparameters(
    names: list[str], learning_rates: dict[str, float], workload: Workload
) -> dict[str, dict[str, Any]]:
    """Per optimizer: the learning rate given, else the workload's, else the registry default.

    Builds each optimizer once on a throwaway parameter, so an unknown name or an invalid
    value fails here, before any training. Raises ValueError naming the problem.
    """
    from optarena.registry import create, lookup, registry_names

    canonical = registry_names(names)
    given = {lookup(name).name: value for name, value in learning_rates.items()}
    stray = [name for name in given if name not in canonical]
    if stray:
        raise ValueError(f"--lr names {', '.join(stray)}, which is not among the optimizers ({', '.join(canonical)})")
    settings = {}
    for name in canonical:
        hp = {}
        if name in given:
            hp["lr"] = given[name]
        elif name in workload.learning_rates:
            hp["lr"] = workload.learning_rates[name]
        create(name, [torch.zeros(1, requires_grad=True)], **hp)
        settings[name] = hp
    return settings


def learning_rate(name: str, hyperparameters: dict[str, Any]) -> float:
    from optarena.registry import lookup

    return float(hyperparameters.get("lr", lookup(name).defaults().get("lr", float("nan"))))


def run_landscape(
    workload: str = "digits-mlp",
    optimizers: list[str] | tuple[str, ...] = DEFAULT_OPTIMIZERS,
    *,
    grid: int = DEFAULT_GRID,
    out: str | Path | None = "landscape.png",
    steps: int | None = None,
    record_every: int | None = None,
    learning_rates: dict[str, float] | None = None,
    plane: str = "pca",
    center: str = "init",
    log: bool = False,
    view: str = "both",
    margin: float = 0.2,
    evaluation_size: int | None = None,
    chunk_size: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
) -> LandscapeRun:
    """Train each optimizer from one seeded start, project the paths, evaluate and draw.

    ``out=None`` draws nothing. Raises ValueError for any bad input, before training.
    """
    chosen = get_workload(workload, data_dir=data_dir)
    names = list(optimizers)
    if not names:
        raise ValueError("give at least one optimizer")
    check_grid_size(grid)
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {', '.join(PLANES)}; got {plane!r}")
    if center not in CENTERS:
        raise ValueError(f"center must be one of {', '.join(CENTERS)}; got {center!r}")
    if plane == "endpoints" and len(names) < 2:
        raise ValueError('plane "endpoints" needs at least two optimizers')
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    whole_number("chunk_size", chunk_size, none_means="automatic")
    settings = resolve_hyperparameters(names, dict(learning_rates or {}), chosen)
    names = list(settings)
    steps = chosen.steps if steps is None else steps
    record_every = record_every or max(1, steps // CHECKPOINTS)
    if out is not None:
        out = check_output(out, files_under(data_dir))

    model = chosen.make_model(seed)
    batch = chosen.evaluation_batch(evaluation_size, seed)
    trajectories = train_paths(
        model,
        chosen.loss_fn,
        chosen.data,
        names,
        steps=steps,
        batch_size=min(chosen.batch_size, len(chosen.data[0])),
        record_every=record_every,
        hyperparameters=settings,
        seed=seed,
    )
    result = landscape_of_paths(
        model,
        chosen.loss_fn,
        batch,
        trajectories,
        grid=grid,
        plane=plane,
        center=center,
        margin=margin,
        chunk_size=chunk_size,
    )
    finals = {run.name: loss_at(model, chosen.loss_fn, batch, run.points[-1]) for run in trajectories}
    if out is not None:
        where = "PCA plane of all checkpoints" if plane == "pca" else "plane through the start and two end points"
        literal_name = chosen.name.replace("$", r"\$")  # a workload's name is text, not TeX
        figure = landscape_figure(
            result.surface,
            result.paths,
            axis_labels=result.plane.labels,
            title=f"{literal_name}: {len(names)} optimizers from one start, on the {where} ({steps} steps)",
            log=log,
            view=view,
            legend=[f"{name} (lr {learning_rate(name, settings[name]):g})" for name in names],
        )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=130)
        write_atomically(out, buffer.getvalue())
    return LandscapeRun(chosen, trajectories, result, finals, len(batch[0]), out)


# -- command line -----------------------------------------------------------------------------


def _grid_points(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of points per axis, got {text!r}") from None
    if not 2 <= value <= MAX_GRID_POINTS:
        raise argparse.ArgumentTypeError(f"a grid needs 2 to {MAX_GRID_POINTS} points per axis, got {value}")
    return value


def _learning_rates(text: str) -> dict[str, float]:
    rates = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            rates[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE pairs separated by commas (sgd=0.1,adam=3e-3), got {item!r}"
            ) from None
    return rates


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``landscape`` on the ``optarena`` subcommand parser."""
    parser = commands.add_parser(
        "landscape",
        help="train optimizers from one start and draw their paths on the loss surface",
        description="Train each optimizer from the same initial point, project all paths onto one plane, "
        "evaluate the loss on a grid of that plane (a batch of networks per vmap call) and draw it.",
    )
    parser.add_argument(
        "--workload",
        default="digits-mlp",
        help=f"an arena workload whose runs expose their loss: {', '.join(drawable_workloads())}, or "
        "package.module:factory (default digits-mlp)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder with MNIST/CIFAR-10 files, for mnist-mlp and cifar10-cnn"
    )
    parser.add_argument(
        "--optimizers",
        type=names,
        default=list(DEFAULT_OPTIMIZERS),
        metavar="NAMES",
        help=f"comma-separated registry names (default {','.join(DEFAULT_OPTIMIZERS)})",
    )
    parser.add_argument(
        "--grid",
        type=_grid_points,
        default=DEFAULT_GRID,
        help=f"points per axis, 2 to {MAX_GRID_POINTS} (default {DEFAULT_GRID})",
    )
    parser.add_argument("--out", default="landscape.png", help="the PNG to write (default landscape.png)")
    parser.add_argument(
        "--steps", type=positive_int, default=None, help="optimizer steps per run (default: the workload's)"
    )
    parser.add_argument(
        "--record-every",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"record a checkpoint every N steps (default: {CHECKPOINTS} checkpoints per run)",
    )
    parser.add_argument(
        "--lr",
        type=_learning_rates,
        default=None,
        metavar="NAME=VALUE,...",
        help="learning rates replacing the workload's and registry's defaults, e.g. sgd=0.05,adam=3e-3",
    )
    parser.add_argument(
        "--plane",
        choices=PLANES,
        default="pca",
        help="pca: principal directions of all checkpoints (default); endpoints: the plane through the start "
        "and the first two optimizers' end points",
    )
    parser.add_argument(
        "--center",
        choices=CENTERS,
        default="init",
        help="for --plane pca: centre on the common start (default) or on the mean of all checkpoints",
    )
    parser.add_argument("--log", action="store_true", help="logarithmic colour levels and heights")
    parser.add_argument(
        "--view", choices=VIEWS, default="both", help="contour with paths, 3-D surface, or both (default)"
    )
    parser.add_argument(
        "--margin",
        type=real(0.0, low_open=False),
        default=0.2,
        help="room around the paths, a fraction of their extent (default 0.2)",
    )
    parser.add_argument(
        "--eval-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate the loss on a fixed random N samples (default: all the workload's data)",
    )
    parser.add_argument(
        "--chunk-size",
        type=positive_int,
        default=None,
        help=f"networks evaluated per batched call; bounds the memory (default: about {ROWS_PER_CALL} "
        "sample rows per call)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the initial model and the mini-batch order (default 0)"
    )
    parser.add_argument(
        "--threads",
        type=threads,
        default=1,
        help="torch threads (default 1: these small networks train fastest on one, and a busy machine stays usable)",
    )
    parser.set_defaults(run=_command)


def _command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        with torch_threads(args.threads):
            result = run_landscape(
                args.workload,
                args.optimizers,
                grid=args.grid,
                out=args.out,
                steps=args.steps,
                record_every=args.record_every,
                learning_rates=args.lr,
                plane=args.plane,
                center=args.center,
                log=args.log,
                view=args.view,
                margin=args.margin,
                evaluation_size=args.eval_size,
                chunk_size=args.chunk_size,
                seed=args.seed,
                data_dir=args.data_dir,
            )
    except ValueError as error:
        print(f"optarena landscape: {error}", file=sys.stderr)
        return 2
    _print_summary(result, time.perf_counter() - started)
    return 0


def _print_summary(result: LandscapeRun, seconds: float) -> None:
    from rich.table import Table

    landscape = result.landscape
    table = Table(title=shown(f"{result.workload.name}: paths on one plane"))
    for column in ("optimizer", "lr", "loss at end", "plane's loss under end", "end off the plane"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for run, path in zip(result.trajectories, landscape.paths):
        table.add_row(
            run.name,
            f"{learning_rate(run.name, run.hyperparameters):g}",
            f"{result.final_losses[run.name]:.4f}",
            f"{path.losses[-1]:.4f}",
            f"{path.off_plane:.1%}",
        )
    console = wide_console()
    console.print(table)
    grid = landscape.surface.losses.size
    console.print(
        f"{grid} grid points on {result.evaluation_samples} samples in {landscape.seconds['grid']:.2f} s; "
        f"{seconds:.1f} s in all."
    )
    if landscape.plane.explained is not None:
        console.print(f"The plane holds {sum(landscape.plane.explained):.1%} of the checkpoints' squared spread.")
    if result.out is not None:
        console.print(shown(f"wrote {result.out}"))

"""``optarena sharpness``: full-batch training with the sharpness measured against the stability threshold.

    optarena sharpness --workload digits-mlp --optimizers sgd,momentum,adam --out sharpness.png

:func:`run_sharpness` does the work and returns every run it drew; :func:`add_command`
registers the subcommand on the ``optarena`` parser.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from optarena.checks import finite_number, whole_number
from optarena.cli_types import names, positive_int, torch_threads, wide_console

if TYPE_CHECKING:
    from optarena.diagnostics.sharpness import SharpnessRun

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "adam")
LEARNING_RATES = {"sgd": 0.3, "momentum": 0.5, "adam": 3e-3}
"""Learning rates at which digits-mlp with the squared error reaches its threshold within 1,000
steps (measured; see docs/diagnostics.md). Other optimizers start from the registry default."""
DEFAULT_STEPS = 1000
DEFAULT_EVERY = 10
LOSSES = ("mse", "workload")
FORMATS = (".png", ".svg", ".pdf")


@dataclass
class SharpnessStudy:
    """What ``optarena sharpness`` trained and drew."""

    workload: str
    loss: str
    samples: int
    runs: list[SharpnessRun]
    seconds: dict[str, float]
    out: Path | None


def resolve_learning_rates(optimizers: list[str], learning_rates: float | dict[str, float] | None) -> dict[str, float]:
    """Per canonical optimizer name: the learning rate given (one for all, or by name), else
    :data:`LEARNING_RATES`, else the registry default. Raises ValueError for an unknown name, a
    rate given for an optimizer not in the list, an invalid rate, or an optimizer whose threshold
    changes from step to step; TypeError for an optimizer whose preconditioner is not defined."""
    from optarena.diagnostics.preconditioned import rule_for, threshold_varies
    from optarena.registry import create, lookup, registry_names

    canonical = registry_names(optimizers)
    if isinstance(learning_rates, dict):
        given = {lookup(name).name: value for name, value in learning_rates.items()}
        stray = [name for name in given if name not in canonical]
        if stray:
            raise ValueError(
                f"--lr names {', '.join(stray)}, which is not among the optimizers ({', '.join(canonical)})"
            )
    elif learning_rates is None:
        given = {}
    else:
        given = dict.fromkeys(canonical, learning_rates)
    rates = {}
    for name in canonical:
        lr = given.get(name, LEARNING_RATES.get(name, lookup(name).defaults().get("lr")))
        lr = finite_number(f"the learning rate of {name}", lr, strict=True)
        optimizer = create(name, [torch.zeros(1, requires_grad=True)], lr=lr)
        if threshold_varies(optimizer):
            raise ValueError(
                f"{rule_for(optimizer).family}'s stability threshold changes from step to step; this command "
                "compares with one (optarena race --sharpness records it at each evaluation)"
            )
        rates[name] = lr
    return rates


def run_sharpness(
    workload: str = "digits-mlp",
    optimizers: list[str] | tuple[str, ...] = DEFAULT_OPTIMIZERS,
    *,
    learning_rates: float | dict[str, float] | None = None,
    steps: int = DEFAULT_STEPS,
    every: int = DEFAULT_EVERY,
    loss: str = "mse",
    batch_size: int | None = None,
    seed: int = 0,
    out: str | Path | None = "sharpness.png",
    data_dir: str | None = None,
    progress: Any = None,
) -> SharpnessStudy:
    """Train each optimizer from the same start on one fixed batch and record loss and sharpness.

    ``loss="mse"`` trains on half the squared error to one-hot labels (the edge of stability
    lasts the whole run); ``"workload"`` on the workload's own loss. The batch is the whole
    training set, or ``batch_size`` samples of it drawn once from ``seed``. ``out=None``
    draws nothing. Raises ValueError (TypeError for an unsupported optimizer) before training.
    """
    from optarena.diagnostics.sharpness import squared_error, track_sharpness
    from optarena.landscape.workloads import get_workload
    from optarena.registry import create

    names_given = list(optimizers)
    if not names_given:
        raise ValueError("give at least one optimizer")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
    whole_number("steps", steps)
    whole_number("every", every)
    whole_number("batch_size", batch_size, none_means="the whole training set")
    if out is not None:
        out = Path(out)
        if out.suffix.lower() not in FORMATS:
            raise ValueError(f"the output must end in {', '.join(FORMATS)}, got {str(out)!r}")
        if not out.parent.is_dir():
            raise ValueError(f"the output folder {str(out.parent)!r} does not exist")
    rates = resolve_learning_rates(names_given, learning_rates)
    chosen = get_workload(workload, data_dir=data_dir)
    batch = chosen.evaluation_batch(batch_size, seed)
    loss_fn = squared_error if loss == "mse" else chosen.loss_fn

    runs, seconds = [], {}
    for name, lr in rates.items():
        started = time.perf_counter()
        model = chosen.make_model(seed)
        optimizer = create(name, model.parameters(), lr=lr)
        runs.append(
            track_sharpness(
                model, loss_fn, batch, optimizer, steps=steps, every=every, name=name, seed=seed, progress=progress
            )
        )
        seconds[name] = time.perf_counter() - started
    if out is not None:
        from optarena.diagnostics.plot import sharpness_figure, write_figure

        loss_name = "squared error" if loss == "mse" else "the workload's loss"
        title = f"{chosen.name}, {loss_name}, one batch of {len(batch[0])}: sharpness against the stability threshold"
        if len(rates) == 1:
            title = title.replace(": ", ":\n")
        write_figure(sharpness_figure(runs, title), out)
    return SharpnessStudy(chosen.name, loss, len(batch[0]), runs, seconds, out)


# -- command line -----------------------------------------------------------------------------


def _learning_rates(text: str) -> float | dict[str, float]:
    """``0.1`` (every optimizer) or ``sgd=0.3,adam=3e-3``."""
    if "=" not in text:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a learning rate or NAME=VALUE pairs separated by commas (sgd=0.3,adam=3e-3), got {text!r}"
            ) from None
    rates = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            rates[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE pairs separated by commas (sgd=0.3,adam=3e-3), got {item!r}"
            ) from None
    return rates


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``sharpness`` on the ``optarena`` subcommand parser."""
    parser = commands.add_parser(
        "sharpness",
        help="full-batch training with the sharpness measured against 2/lr: the edge of stability",
        description="Train each optimizer from the same start on one fixed batch at a fixed learning rate, "
        "measure the Hessian's top eigenvalue (for adaptive optimizers, that of the preconditioned Hessian P^-1 H) "
        "every few steps, and draw it against the optimizer's stability threshold (2/lr for gradient descent).",
    )
    parser.add_argument(
        "--workload", default="digits-mlp", help="an arena workload whose runs expose their loss (default digits-mlp)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder with MNIST/CIFAR-10 files, for mnist-mlp and cifar10-cnn"
    )
    parser.add_argument(
        "--optimizers",
        type=names,
        default=list(DEFAULT_OPTIMIZERS),
        metavar="NAMES",
        help=f"comma-separated registry names: SGD (sgd, momentum, nesterov), Adam, AdamW, AMSGrad, RMSprop or "
        f"Adagrad (default {','.join(DEFAULT_OPTIMIZERS)})",
    )
    parser.add_argument(
        "--lr",
        type=_learning_rates,
        default=None,
        metavar="LR or NAME=VALUE,...",
        help="one learning rate for all, or per optimizer, e.g. sgd=0.3,adam=3e-3 (default "
        + ",".join(f"{k}={v:g}" for k, v in LEARNING_RATES.items())
        + ", else the registry's)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=DEFAULT_STEPS,
        help=f"full-batch steps per optimizer (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--every",
        type=positive_int,
        default=DEFAULT_EVERY,
        metavar="N",
        help=f"measure the sharpness every N steps (default {DEFAULT_EVERY})",
    )
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="mse",
        help="mse: half the squared error to one-hot labels (default; its edge of stability lasts the whole run); "
        "workload: the workload's own loss (cross-entropy for classifiers, whose curvature fades as the fit improves)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="train and measure on a fixed N samples (default: the whole training set)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the initial model, the batch and the Lanczos start (default 0)"
    )
    parser.add_argument(
        "--out", default="sharpness.png", help="the picture to write: .png, .svg or .pdf (default sharpness.png)"
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    parser.set_defaults(run=_command)


def _command(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        with torch_threads(args.threads):
            study = run_sharpness(
                args.workload,
                args.optimizers,
                learning_rates=args.lr,
                steps=args.steps,
                every=args.every,
                loss=args.loss,
                batch_size=args.batch_size,
                seed=args.seed,
                out=args.out,
                data_dir=args.data_dir,
            )
    except (ValueError, TypeError) as error:
        print(f"optarena sharpness: {error}", file=sys.stderr)
        return 2
    print_summary(study, time.perf_counter() - started)
    return 0


def print_summary(study: SharpnessStudy, seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"{study.workload} ({study.loss}, {study.samples} samples): sharpness / threshold")
    columns = (
        "optimizer",
        "lr",
        "threshold",
        "first",
        "max",
        "median, 2nd half",
        "final loss",
        "Lanczos steps",
        "seconds",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for run in study.runs:
        ratios = run.ratios
        second_half = [r for t, r in zip(run.measured_at, ratios) if t >= len(run.losses) // 2]
        table.add_row(
            run.name,
            f"{run.lr:g}",
            f"{run.threshold_label} = {run.threshold:.4g}",
            f"{ratios[0]:.3f}" if ratios else "-",
            f"{max(ratios):.3f}" if ratios else "-",
            f"{statistics.median(second_half):.3f}" if second_half else "-",
            f"{run.losses[-1]:.4g}" + (f" (diverged at step {run.diverged_at})" if run.diverged_at is not None else ""),
            f"{statistics.mean(run.lanczos_steps):.1f}" if run.lanczos_steps else "-",
            f"{study.seconds[run.name]:.1f}",
        )
    console = wide_console()
    console.print(table, markup=False)
    console.print(f"{seconds:.1f} s in all.", markup=False)
    if study.out is not None:
        console.print(f"wrote {study.out}", markup=False)

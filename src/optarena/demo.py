"""A quick comparison of optimizers on generated data: no network, no downloads.

A small ReLU network learns to separate two interleaved spirals in the plane, trained with
mini-batches from several seeds per optimizer. The spirals wind far enough that plain
gradient steps stall on a plateau for a while, so the optimizers separate within a few
seconds each. Each optimizer runs at its registry default learning rate, except where
:data:`DEMO_LEARNING_RATES` gives one (the table printed says which).

    >>> rows = run_demo(["sgd", "adam"], seeds=1, epochs=5)  # doctest: +SKIP
    >>> print_demo(rows)                                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from optarena.checks import whole_numbers
from optarena.cli_types import torch_threads, wide_console
from optarena.registry import create, lookup

DEFAULT_OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "radam",
    "nadam",
    "amsgrad",
    "adamax",
    "adadelta",
)

DEMO_LEARNING_RATES: dict[str, float] = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "lars": 5.0,
    "qhm": 0.1,
}
"""Learning rates the demo uses instead of the registry default.

The SGD family's default (1e-3, as torch.optim) barely moves this network in a short run.
The three get the same effective step, ``lr / (1 - momentum)`` = 0.1. LARS and QHM have no
default learning rate; QHM's averaged buffer makes ``lr`` its effective step, so 0.1 too.
"""

DEMO_SETTINGS: dict[str, dict[str, float]] = {"qhm": {"momentum": 0.999, "nu": 0.7}}
"""Other arguments without a default, set for the demo (QHM: the paper's rule of thumb)."""

DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 60
DEFAULT_BATCH_SIZE = 64
DEFAULT_HIDDEN = 32
DEFAULT_POINTS = 1000
TEST_FRACTION = 0.3


# -- data and model -----------------------------------------------------------------------


def two_spirals(n: int, turns: float = 1.75, noise: float = 0.05, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` points on two interleaved spirals with Gaussian noise; labels 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    # Uniform in radius along each arm, starting a little away from the tangled centre.
    t = (0.08 + 0.92 * torch.rand(n, generator=g)) * turns * 2 * math.pi
    angle = t + math.pi * labels
    radius = 2.0 * t / (turns * 2 * math.pi)
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points = points + noise * torch.randn(n, 2, generator=g)
    return points, labels


def make_model(hidden: int = DEFAULT_HIDDEN) -> nn.Module:
    """A two-hidden-layer ReLU classifier for points in the plane."""
    return nn.Sequential(
        nn.Linear(2, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 2),
    )


def demo_learning_rate(name: str) -> tuple[float, str]:
    """The learning rate the demo uses for ``name`` and where it comes from ('demo' or 'default')."""
    entry = lookup(name)
    if entry.name in DEMO_LEARNING_RATES:
        return DEMO_LEARNING_RATES[entry.name], "demo"
    return float(entry.defaults()["lr"]), "default"


# -- one run and the sweep --------------------------------------------------------------------


def train_once(
    name: str,
    lr: float,
    seed: int,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    epochs: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    hidden: int = DEFAULT_HIDDEN,
) -> dict[str, float]:
    """Train a fresh model with optimizer ``name``; losses are cross-entropy over the whole train set."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = make_model(hidden)
    optimizer = create(name, model.parameters(), lr=lr, **DEMO_SETTINGS.get(name, {}))
    order = torch.Generator().manual_seed(seed)
    loss_fn = nn.functional.cross_entropy

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            loss = float(loss_fn(model(x_train), y_train))
            accuracy = float((model(x_test).argmax(dim=1) == y_test).float().mean())
        return loss, accuracy

    initial_loss, _ = evaluate()
    n = x_train.shape[0]
    start = time.perf_counter()
    for _ in range(epochs):
        permutation = torch.randperm(n, generator=order)
        for first in range(0, n, batch_size):
            batch = permutation[first : first + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    final_loss, accuracy = evaluate()
    if not math.isfinite(final_loss):
        final_loss, accuracy = math.inf, 0.0
    return {
        "seed": seed,
        "initial_loss": initial_loss,
        "train_loss": final_loss,
        "test_accuracy": accuracy,
        "seconds": seconds,
    }


def run_demo(
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    seeds: int = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    hidden: int = DEFAULT_HIDDEN,
    points: int = DEFAULT_POINTS,
    learning_rates: dict[str, float] | None = None,
    threads: int | None = 1,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every optimizer over ``seeds`` seeds; one row per optimizer, best test accuracy first.

    Each row holds ``name``, ``lr``, ``lr_source`` ('default', 'demo' or 'given'), the medians
    over seeds of ``initial_loss``, ``train_loss`` (final, whole train set), ``test_accuracy``
    and ``seconds`` (training time of one run), the total ``seconds_total`` and the per-seed
    ``runs``. A diverged run counts as loss ``inf`` and accuracy 0. Names are checked before
    anything runs (``ValueError`` with close matches for an unknown one); ``learning_rates``
    overrides the demo's choice per name. ``threads`` sets torch's intra-op threads for the
    duration (None leaves them alone); tiny models run fastest on one.
    """
    whole_numbers(seeds=seeds, epochs=epochs)
    names = [lookup(name).name for name in optimizers]
    given = {lookup(k).name: v for k, v in (learning_rates or {}).items()}
    x, y = two_spirals(points)
    n_test = int(round(points * TEST_FRACTION))
    data = (x[n_test:], y[n_test:], x[:n_test], y[:n_test])
    rows = []
    with torch_threads(threads):
        for name in names:
            lr, source = (given[name], "given") if name in given else demo_learning_rate(name)
            runs = [
                train_once(name, lr, seed, data, epochs=epochs, batch_size=batch_size, hidden=hidden)
                for seed in range(seeds)
            ]
            row = {
                "name": name,
                "lr": lr,
                "lr_source": source,
                "seeds": seeds,
                "epochs": epochs,
                "initial_loss": statistics.median(r["initial_loss"] for r in runs),
                "train_loss": statistics.median(r["train_loss"] for r in runs),
                "test_accuracy": statistics.median(r["test_accuracy"] for r in runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "seconds_total": sum(r["seconds"] for r in runs),
                "runs": runs,
            }
            rows.append(row)
            if on_result is not None:
                on_result(row)
    rows.sort(key=lambda r: (-r["test_accuracy"], r["train_loss"]))
    return rows


# -- printing ------------------------------------------------------------------------------


def demo_table(rows: Sequence[dict[str, Any]]) -> Any:
    """The results as a rich table."""
    from rich.table import Table

    if rows:
        seeds, epochs = rows[0]["seeds"], rows[0]["epochs"]
        title = f"Two spirals, {epochs} epochs, median of {seeds} seed{'s' if seeds != 1 else ''}"
    else:
        title = "Two spirals"
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("optimizer", no_wrap=True)
    table.add_column("lr", justify="right", no_wrap=True)
    table.add_column("lr from", no_wrap=True)
    table.add_column("train loss", justify="right")
    table.add_column("test acc", justify="right")
    table.add_column("s / run", justify="right")
    for rank, row in enumerate(rows, 1):
        loss = row["train_loss"]
        table.add_row(
            str(rank),
            row["name"],
            f"{row['lr']:g}",
            row["lr_source"],
            f"{loss:.4f}" if math.isfinite(loss) else "diverged",
            f"{row['test_accuracy']:.1%}",
            f"{row['seconds']:.2f}",
        )
    return table


def print_demo(rows: Sequence[dict[str, Any]], console: Any = None, wall_seconds: float | None = None) -> None:
    """Print the table, the learning-rate note and the timing."""
    console = console or wide_console()
    console.print(demo_table(rows))
    sources = {row["lr_source"] for row in rows}
    notes = ["lr from: 'default' is the registry default"]
    if "demo" in sources:
        notes.append(
            "'demo' is set by the demo, as the SGD family's default (1e-3) is too small here "
            "(sgd, momentum and nesterov get the same effective step, lr / (1 - momentum))"
        )
    if "given" in sources:
        notes.append("'given' was passed in")
    console.print("; ".join(notes) + ".")
    if wall_seconds is not None:
        console.print(f"Wall time: {wall_seconds:.1f} s")


def demo(
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    seeds: int = DEFAULT_SEEDS,
    epochs: int = DEFAULT_EPOCHS,
    console: Any = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run the demo and print its table; returns the rows."""
    console = console or wide_console()
    names = [lookup(name).name for name in optimizers]
    hidden = options.get("hidden", DEFAULT_HIDDEN)
    points = options.get("points", DEFAULT_POINTS)
    threads = options.get("threads", 1)
    console.print(
        f"Two spirals: {points} points ({TEST_FRACTION:.0%} held out), a 2-{hidden}-{hidden}-2 ReLU network, "
        f"batches of {options.get('batch_size', DEFAULT_BATCH_SIZE)}; {len(names)} optimizers x {seeds} "
        f"seed{'s' if seeds != 1 else ''} x {epochs} epochs"
        + (f", {threads} torch thread{'s' if threads != 1 else ''}." if threads else ".")
    )
    start = time.perf_counter()
    with console.status("training") as status:

        def progress(row: dict[str, Any]) -> None:
            status.update(f"done: {row['name']} (test acc {row['test_accuracy']:.1%})")

        rows = run_demo(names, seeds, epochs, on_result=progress, **options)
    print_demo(rows, console, wall_seconds=time.perf_counter() - start)
    return rows

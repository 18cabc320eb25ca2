"""Speed of the batched landscape evaluation against a per-point loop and ``loss-landscapes``.

All three evaluate the same number of networks (a ``grid x grid`` plane of filter-normalised
random directions) of the same model on the same fixed batch:

- ``batched``: :func:`optarena.landscape.evaluate_points`, ``torch.func.vmap`` over
  ``functional_call``, ``chunk_size`` networks per call (``auto``: the default sizing), with
  the first layer evaluated once per direction (the default); ``batched, whole network``
  runs every layer per point (``decompose=False``);
- ``loop``: :func:`optarena.landscape.evaluate_points_loop`, one ``functional_call`` per point
  (the same numbers; the script checks that they agree);
- ``loss-landscapes``: the ``loss-landscapes`` package's ``random_plane`` (PyPI
  ``loss-landscapes``; ``pip install -e '.[bench]'``), which moves the model's parameters in
  place from point to point. Its directions are its own, so its numbers are not compared.

The methods run interleaved, ``--repeats`` rounds, and the table reports the median and the
fastest round of each. The model is the ``digits-mlp`` workload's network after a short Adam
run. Two losses are timed: ``cross-entropy`` (``torch.nn.functional.cross_entropy``) and
``logsumexp``, the same loss written as ``logsumexp(logits) - logits[target]`` (the one the
workloads train and the landscape evaluates with). They agree to
float32 rounding; the second shows how much of the time goes to torch's CPU ``log_softmax``
over a last dimension of 10, which is several times slower than over 16 (every method pays it,
once per network). Example::

    python benchmarks/landscape_speed.py --grid 41 --eval-sizes 128,512,1438 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from optarena.arena.workloads.base import cross_entropy
from optarena.landscape import evaluate_points, evaluate_points_loop, load_vector, random_direction, train_paths
from optarena.landscape.evaluate import auto_chunk_size
from optarena.landscape.surface import grid_coordinates
from optarena.landscape.workloads import get_workload


def _ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def _chunks(text: str) -> list[int | None]:
    return [None if item.strip() == "auto" else int(item) for item in text.split(",") if item.strip()]


LOSSES = {"cross-entropy": torch.nn.functional.cross_entropy, "logsumexp": cross_entropy}
"""``logsumexp`` is the arena workloads' own loss (:func:`optarena.arena.workloads.base.cross_entropy`)."""


def _losses(text: str) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [name for name in names if name not in LOSSES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown loss {unknown[0]!r}; choose from {', '.join(LOSSES)}")
    return names


def trained_model(steps: int, seed: int):
    """The digits MLP after ``steps`` Adam steps, its loss and data."""
    workload = get_workload("digits-mlp")
    model = workload.make_model(seed)
    (run,) = train_paths(
        model,
        workload.loss_fn,
        workload.data,
        ["adam"],
        steps=steps,
        batch_size=workload.batch_size,
        record_every=steps,
        seed=seed,
    )
    load_vector(model, run.points[-1])
    return workload, model.eval()


def loss_landscapes_plane() -> Callable | None:
    """A function running loss-landscapes' random plane, or None when the package is missing."""
    try:
        import loss_landscapes
        import loss_landscapes.metrics
    except ImportError:
        return None

    def run(model, loss_fn, inputs, targets, grid):
        metric = loss_landscapes.metrics.Loss(loss_fn, inputs, targets)
        with torch.no_grad():
            return loss_landscapes.random_plane(
                model, metric, distance=1, steps=grid, normalization="filter", deepcopy_model=True
            )

    return run


def time_interleaved(methods: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each method once per round, in an order that rotates between rounds; seconds per call."""
    for method in methods.values():  # warm-up: imports, allocator, first-call overheads
        method()
    names = list(methods)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            methods[name]()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", type=int, default=41, help="points per axis (default 41)")
    parser.add_argument(
        "--eval-sizes", type=_ints, default=[128, 512, 1438], help="evaluation batch sizes (default 128,512,1438)"
    )
    parser.add_argument(
        "--chunk-sizes",
        type=_chunks,
        default=[None, 16, 64, 256],
        help="batched chunk sizes, 'auto' for the default sizing (default auto,16,64,256)",
    )
    parser.add_argument(
        "--losses", type=_losses, default=list(LOSSES), help=f"losses to time (default {','.join(LOSSES)})"
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps before measuring (default 300)")
    args = parser.parse_args()
    if args.grid < 2:
        parser.error(f"--grid needs at least 2 points per axis, got {args.grid}")
    torch.set_num_threads(args.threads)

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=120)
    workload, model = trained_model(args.train_steps, seed=0)
    center = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    generator = torch.Generator().manual_seed(0)
    directions = torch.stack([random_direction(model, generator=generator) for _ in range(2)])
    axis = torch.linspace(-1.0, 1.0, args.grid)
    coords = grid_coordinates(axis, axis)
    peer = loss_landscapes_plane()
    load_before = os.getloadavg()[0]
    console.print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs; digits-mlp "
        f"({center.numel()} parameters) after {args.train_steps} Adam steps; {args.grid}x{args.grid} = "
        f"{coords.shape[0]} networks per plane; {args.repeats} interleaved rounds."
    )
    if peer is None:
        console.print("[bold]loss-landscapes is not installed[/bold]: pip install -e '.[bench]' to compare with it.")

    table = Table(title=f"seconds per {args.grid}x{args.grid} plane: median (fastest round)")
    for column in ("loss", "eval batch", "method", "seconds", "loop / method", "loss-landscapes / method"):
        table.add_column(column, justify="left" if column in ("loss", "method") else "right")
    for loss_name in args.losses:
        loss_fn = LOSSES[loss_name]
        for size in args.eval_sizes:
            inputs, targets = workload.evaluation_batch(size, seed=0)
            batch = (inputs, targets)
            looped = evaluate_points_loop(model, loss_fn, batch, center, directions, coords)
            reference = evaluate_points_loop(
                model, torch.nn.functional.cross_entropy, batch, center, directions, coords
            )
            methods: dict[str, Callable[[], object]] = {
                "loop": lambda loss_fn=loss_fn, batch=batch: evaluate_points_loop(
                    model, loss_fn, batch, center, directions, coords
                )
            }
            worst = ((looped - reference).abs() / reference.abs()).max().item()
            for decompose in (True, False):
                for chunk in args.chunk_sizes:
                    batched = evaluate_points(
                        model, loss_fn, batch, center, directions, coords, chunk_size=chunk, decompose=decompose
                    )
                    error = ((batched - looped).abs() / looped.abs()).max().item()
                    if error > 1e-5:
                        raise SystemExit(f"batched (chunk {chunk}) differs from the loop by {error:.2e} relative")
                    worst = max(worst, error)
                    size = f"chunk {chunk}" if chunk else f"auto ({auto_chunk_size(len(inputs), center.numel())})"
                    label = f"batched{'' if decompose else ', whole network'}, {size}"
                    methods[label] = lambda chunk=chunk, decompose=decompose, loss_fn=loss_fn, batch=batch: (
                        evaluate_points(
                            model, loss_fn, batch, center, directions, coords, chunk_size=chunk, decompose=decompose
                        )
                    )
            if peer is not None:
                methods["loss-landscapes"] = lambda loss_fn=loss_fn, inputs=inputs, targets=targets: peer(
                    model, loss_fn, inputs, targets, args.grid
                )
            seconds = time_interleaved(methods, args.repeats)
            median = {name: statistics.median(values) for name, values in seconds.items()}
            for name, values in seconds.items():
                peer_ratio = f"{median['loss-landscapes'] / median[name]:.2f}x" if peer is not None else "-"
                table.add_row(
                    loss_name,
                    str(len(inputs)),
                    name,
                    f"{median[name]:.4f} ({min(values):.4f})",
                    f"{median['loop'] / median[name]:.2f}x",
                    peer_ratio,
                )
            table.add_section()
            console.print(
                f"{loss_name}, eval batch {len(inputs)}: batched, loop and torch's cross-entropy agree to "
                f"{worst:.1e} relative (float32)."
            )
    console.print(table)
    load_after = os.getloadavg()[0]
    console.print(
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after on {os.cpu_count()} CPUs"
        + (
            " (a busy machine: expect noisy timings)."
            if max(load_before, load_after) > (os.cpu_count() or 1) * 0.75
            else "."
        )
    )


if __name__ == "__main__":
    main()

"""``optarena bench``: step time, memory and compile time of every optimizer.

    optarena bench                                      # everything, the transformer set (long)
    optarena bench --optimizers adam,sgd,lamb --params small --no-compile-timing
    optarena bench --from-json step_speed.json --markdown docs/performance.md

Writes ``<out>.csv`` and ``<out>.json`` and prints the tables; ``--markdown`` also writes
the docs page. :func:`add_command` registers the subcommand; :func:`main` is the same
command as a standalone program (``benchmarks/step_speed.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from optarena.bench.bandwidth import DEFAULT_ELEMENTS
from optarena.bench.params import DTYPES, PRESETS
from optarena.bench.timing import DEFAULT_PEER_STEP_LIMIT_S
from optarena.cli_types import names, positive_int, real

DEFAULT_OUT = "step_speed"
DESCRIPTION = (
    "Step time, memory and compile time of every optimizer, against torch's fused Adam, the "
    "memory-bandwidth limit and the same algorithm in torch.optim and two popular libraries."
)


def _backends(text: str) -> tuple[str, ...]:
    from optarena.bench.runner import BACKENDS

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    wrong = [name for name in names if name not in BACKENDS]
    if not names or wrong:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(BACKENDS)}, got {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optarena bench`` (and of ``benchmarks/step_speed.py``)."""
    parser.add_argument(
        "--optimizers",
        type=names,
        default=None,
        metavar="NAMES",
        help="comma-separated registry names (default: every registered optimizer)",
    )
    parser.add_argument(
        "--params",
        choices=sorted(PRESETS),
        default="transformer",
        help="parameter set: 'transformer' (41.9M float32 parameters in 157 tensors), "
        "'matrices' (16 x 2048 x 512) or 'small' (quick runs) (default transformer)",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=10, help="timed rounds; the median is reported (default 10)"
    )
    parser.add_argument("--warmup", type=positive_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads (default: torch's own choice)"
    )
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:N]' (default cpu)")
    parser.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default="float32",
        help="parameter and gradient dtype (default float32)",
    )
    parser.add_argument(
        "--state-dtype",
        choices=tuple(DTYPES),
        default=None,
        help="state dtype of bfloat16 parameters, for every optimizer that takes state_dtype "
        "(default: each optimizer's own, float32)",
    )
    parser.add_argument(
        "--peer-step-limit",
        type=real(0.0),
        default=DEFAULT_PEER_STEP_LIMIT_S,
        metavar="SECONDS",
        help="a peer whose warm-up step takes longer (its first, which may compile: 10 times this) is reported and not timed "
        f"(default {DEFAULT_PEER_STEP_LIMIT_S:g}; checked between operations, so one long native call "
        "still runs to its end)",
    )
    parser.add_argument(
        "--backends",
        type=_backends,
        default=("fused", "eager"),
        metavar="LIST",
        help="optarena backends to time: fused,eager (default both)",
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip torch.optim, torch-optimizer and pytorch-optimizer"
    )
    parser.add_argument(
        "--no-compile-timing",
        action="store_true",
        help="skip the cold and warm first-step times (three new processes per optimizer)",
    )
    parser.add_argument(
        "--bandwidth-elements",
        type=positive_int,
        default=DEFAULT_ELEMENTS,
        metavar="N",
        help=f"float32 elements per bandwidth array (default {DEFAULT_ELEMENTS})",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, metavar="PATH", help=f"write PATH.csv and PATH.json (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--markdown",
        default=None,
        metavar="PATH",
        help="also write the docs page (docs/performance.md) from the results",
    )
    parser.add_argument("--note", default=None, help="a remark placed at the top of the docs page")
    parser.add_argument(
        "--from-json",
        nargs="+",
        default=None,
        metavar="JSON",
        help="measure nothing: print and write the page from saved results (several for several devices)",
    )


def run(args: argparse.Namespace, prog: str = "optarena bench") -> int:
    """Run the benchmark (or load results) as ``args`` say; 2 on a usage error."""
    from optarena.bench.report import output_paths, print_result, read_result, write_outputs, write_page
    from optarena.bench.runner import BenchConfig, BenchResult, run_benchmark
    from optarena.files import OutputError, check_output

    try:
        if args.markdown:
            check_output(args.markdown, args.from_json or (), create_folder=True)
        if not args.from_json:
            for path in output_paths(args.out):
                check_output(path, create_folder=True)
    except OutputError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    if args.from_json:
        try:
            results = [read_result(path) for path in args.from_json]
        except ValueError as error:
            print(f"{prog}: {error}", file=sys.stderr)
            return 2
        for result in results:
            print_result(result)
    else:
        config = BenchConfig(
            optimizers=args.optimizers,
            params=args.params,
            steps=args.steps,
            warmup=args.warmup,
            threads=args.threads,
            device=args.device,
            backends=tuple(args.backends),
            peers=not args.no_peers,
            compile_timing=not args.no_compile_timing,
            bandwidth_elements=args.bandwidth_elements,
            dtype=args.dtype,
            state_dtype=args.state_dtype,
            peer_step_limit_s=args.peer_step_limit,
        )
        started = time.perf_counter()

        def progress(message: str) -> None:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

        try:
            config.check()
            from optarena.bench.runner import resolve_names

            resolve_names(config.optimizers)
        except (ValueError, RuntimeError) as error:
            print(f"{prog}: {error}", file=sys.stderr)
            return 2

        def save(partial: BenchResult) -> None:  # after each optimizer: a stopped run keeps its rows
            write_outputs(partial, args.out)

        result = run_benchmark(config, progress, save)
        results = [result]
        print_result(result)
        csv_path, json_path = write_outputs(result, args.out)
        print(f"wrote {csv_path} and {json_path}")
    if args.markdown:
        path = write_page(results, args.markdown, args.note, inputs=args.from_json or ())
        print(f"wrote {path}")
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:
    """Register ``optarena bench`` on the ``optarena`` parser's subcommands."""
    parser = commands.add_parser(
        "bench",
        help="step time, memory and compile time of every optimizer against torch and other libraries",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def main(argv: Sequence[str] | None = None, prog: str = "step_speed.py") -> int:
    """The same command as a standalone program; returns the exit status (2 for usage errors)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    return run(args, prog)

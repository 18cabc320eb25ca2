"""``optarena claims``: run the claims' studies, draw their figures and give their verdicts."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from optarena.cli_types import positive_int, wide_console


def add_command(commands: Any) -> None:
    from optarena.claims.studies import CLAIMS

    parser = commands.add_parser(
        "claims",
        help="test the seeds' claims (RAdam, AdamW, Lookahead, LAMB, AdaBound, one-cycle) through the arena",
        description="Run each claim's study through the arena into DIR/NAME/runs.sqlite, draw its figure in the "
        "paper's form and judge it by the test stated in advance in its docstring: holds, does not hold at this "
        "scale, or inconclusive. Writes DIR/claims.md. Rerunning reuses the stored runs.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"claims to run (default all: {', '.join(CLAIMS)})")
    parser.add_argument("--quick", action="store_true", help="smaller grids and budgets: minutes, not the full run")
    parser.add_argument("--out", required=True, help="directory for the stores, figures and claims.md")
    parser.add_argument("--workers", type=positive_int, default=None, help="runs at once (default: the cores here)")
    parser.add_argument(
        "--executor",
        choices=("local", "inline"),
        default="local",
        help="local: a process pool (default); inline: this process",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from optarena.arena.executors import make_executor
    from optarena.claims.base import claims_page, run_claim
    from optarena.claims.studies import CLAIMS

    unknown = [n for n in args.names if n not in CLAIMS]
    if unknown:
        print(
            f"optarena claims: error: unknown claim {', '.join(map(repr, unknown))}; known: {', '.join(CLAIMS)}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"optarena claims: error: {str(out)!r} is a file; --out names a directory", file=sys.stderr)
        return 2
    names = list(dict.fromkeys(args.names)) or list(CLAIMS)
    console = wide_console()
    started = time.perf_counter()
    results = []
    workers = None if args.executor == "inline" else args.workers
    with make_executor(args.executor, workers, 1) as executor:  # one thread per run: the models are tiny
        for name in names:
            result = run_claim(CLAIMS[name], out, executor, args.quick)
            console.print(
                f"{name}: {result.verdict.verdict}. {result.verdict.evidence} "
                f"({result.trials} runs, {result.ran} run now, {result.seconds:.0f} s)",
                markup=False,
            )
            results.append(result)
    seconds = time.perf_counter() - started
    command = "optarena claims " + " ".join(
        shlex.quote(a) for a in [*args.names, *(["--quick"] if args.quick else []), "--out", str(args.out)]
    )
    page = out / "claims.md"
    page.write_text(claims_page(results, command, seconds))
    console.print(f"{len(results)} claims in {seconds:.0f} s; wrote {page}.", markup=False)
    return 0

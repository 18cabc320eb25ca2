"""The ``optarena`` command: ``list``, ``demo`` and ``docs``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from optarena import __version__
from optarena.arena.algoperf_command import add_targets_command
from optarena.arena.command import add_command as add_arena_commands
from optarena.arena.export import add_command as add_export_command
from optarena.arena.workloads.command import add_command as add_workloads_command
from optarena.bench.command import add_command as add_bench_command
from optarena.claims.command import add_command as add_claims_command
from optarena.cli_types import names, positive_int, threads, wide_console
from optarena.demo import DEFAULT_EPOCHS, DEFAULT_OPTIMIZERS, DEFAULT_SEEDS
from optarena.diagnostics.command import add_command as add_sharpness_command
from optarena.functions.command import add_command as add_function_commands
from optarena.landscape.command import add_command as add_landscape_command

# -- subcommands ------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from optarena.registry import available

    table = Table(title="optarena optimizers")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("description")
    table.add_column("paper")
    for entry in available():
        description = escape(entry.description)
        if entry.preset:
            settings = ", ".join(f"{k}={v!r}" for k, v in entry.preset.items())
            description += f" [dim]({entry.cls.__name__} with {settings})[/dim]"
        paper = entry.paper.cite() if entry.paper is not None else ""
        table.add_row(entry.name, description, escape(paper))
    wide_console().print(table)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from optarena.demo import demo
    from optarena.registry import lookup

    names = args.optimizers or list(DEFAULT_OPTIMIZERS)
    try:
        names = [lookup(name).name for name in names]
    except ValueError as error:
        print(f"optarena demo: {error}", file=sys.stderr)
        return 2
    demo(names, seeds=args.seeds, epochs=args.epochs, threads=args.threads)
    return 0


def _docs(args: argparse.Namespace) -> int:
    from optarena.docgen import check_docs, write_docs

    root = Path(args.root)
    if not root.is_dir():
        print(
            f"optarena docs: --root {str(root)!r} is not a folder; give the repository root (the folder holding docs/)",
            file=sys.stderr,
        )
        return 2
    if args.check:
        stale = check_docs(root)
        if stale:
            for path in stale:
                print(f"{'out of date' if (root / path).is_file() else 'missing'}: {path}", file=sys.stderr)
            print("Run `optarena docs` to regenerate.", file=sys.stderr)
            return 1
        print("Generated docs are up to date.")
        return 0
    from optarena.files import OutputError

    try:
        written = write_docs(root)
    except OutputError as error:
        print(f"optarena docs: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("Generated docs are already up to date.")
    return 0


# -- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optarena",
        description="Faithful, fast PyTorch optimizers and a lab to choose between them.",
    )
    parser.add_argument("--version", action="version", version=f"optarena {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    listing = commands.add_parser("list", help="list the registered optimizers")
    listing.set_defaults(run=_list)

    demo = commands.add_parser(
        "demo",
        help="compare optimizers on a small generated classification task (CPU, under a minute)",
    )
    demo.add_argument(
        "--optimizers",
        type=names,
        default=None,
        metavar="NAMES",
        help=f"comma-separated registry names (default: {','.join(DEFAULT_OPTIMIZERS)})",
    )
    demo.add_argument(
        "--seeds", type=positive_int, default=DEFAULT_SEEDS, help=f"seeds per optimizer (default {DEFAULT_SEEDS})"
    )
    demo.add_argument(
        "--epochs", type=positive_int, default=DEFAULT_EPOCHS, help=f"epochs per run (default {DEFAULT_EPOCHS})"
    )
    demo.add_argument("--threads", type=threads, default=1, help="torch threads while training (default 1)")
    demo.set_defaults(run=_demo)

    docs = commands.add_parser("docs", help="generate docs/optimizers.md from the registry")
    docs.add_argument("--root", default=".", help="repository root (default: the current directory)")
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 naming any out-of-date file")
    docs.set_defaults(run=_docs)

    add_function_commands(commands)
    add_arena_commands(commands)
    add_targets_command(commands)
    add_export_command(commands)
    add_claims_command(commands)
    add_workloads_command(commands)
    add_landscape_command(commands)
    add_bench_command(commands)
    add_sharpness_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for usage errors)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return args.run(args)
    except MemoryError as error:
        return _out_of_memory(args.command, str(error))
    except RuntimeError as error:
        if "can't allocate memory" not in str(error):
            raise
        return _out_of_memory(args.command, str(error))


def _out_of_memory(command: str, detail: str) -> int:
    """One line for an allocation that a size on the command line made too large (exit status 1)."""
    first = detail.strip().splitlines()[-1] if detail.strip() else "out of memory"
    print(
        f"optarena {command}: error: not enough memory ({first}); lower the sizes given on the command line",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

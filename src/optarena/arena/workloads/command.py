"""``optarena workloads``: list the built-in workloads, or check one (your own included)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from optarena.cli_types import wide_console

COMMAND = "workloads"


def add_command(commands: Any) -> None:
    """Register ``optarena workloads`` on the CLI's subparsers."""
    parser = commands.add_parser(
        COMMAND,
        help="list the arena's built-in workloads, or check one with --check",
        description="List the built-in workloads with their targets and budgets. With --check SPEC, "
        "set up a workload (a built-in name or package.module:factory), run one step and one evaluation, "
        "and report what breaks the protocol.",
    )
    parser.add_argument("--check", metavar="SPEC", default=None, help="a built-in name or package.module:factory")
    parser.add_argument("--data-dir", default=None, help="where mnist-mlp and cifar10-cnn read their files")
    parser.add_argument("--quick", action="store_true", help="with --check: the quick budget")
    parser.set_defaults(run=run)


def _target(target) -> str:
    sign = "≥" if target.mode == "max" else "≤"
    return f"{target.metric} {sign} {target.value:g}"


def _list() -> int:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from optarena.arena.workloads import available_workloads

    table = Table(title="optarena workloads", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("target", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("batch", justify="right", no_wrap=True)
    table.add_column("what and why", ratio=1)
    for info in available_workloads():
        description = escape(info.description)
        table.add_row(
            info.name,
            _target(info.target),
            f"{info.budget.steps}/{info.quick_budget.steps}",
            str(info.budget.batch_size),
            description,
        )
    console = wide_console()
    console.print(table)
    console.print("steps: default/quick budget. Your own workload: package.module:factory (docs/workloads.md).")
    return 0


def _check(spec: str, data_dir: str | None, quick: bool) -> int:
    from optarena.arena.workloads import check_trainable, get_workload

    options = {"quick": True} if quick else {}
    start = time.perf_counter()
    workload = get_workload(spec, data_dir=data_dir, **options)
    trainable = workload.setup(0)
    metrics = check_trainable(trainable, workload)
    seconds = time.perf_counter() - start
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    print(
        f"{workload.name}: ok ({workload.steps} steps, evaluate every {workload.eval_every}; "
        f"target {_target(workload.target)}). After one step: {shown}. Checked in {seconds:.1f} s."
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.check is None:
        return _list()
    try:
        return _check(args.check, args.data_dir, args.quick)
    except (ValueError, TypeError) as error:
        print(f"optarena {COMMAND}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except Exception as error:  # the workload's own code failed: say so without a traceback
        print(f"optarena {COMMAND}: {args.check} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1

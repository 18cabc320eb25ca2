"""Argument types shared by the ``optarena`` subcommands: each parses one string or says why not."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def whole(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """A whole number of at least ``low`` (and at most ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a number {allowed}, got {value}")
        return value

    return parse


positive_int = whole(1)
"""A whole number of at least 1."""

MAX_THREADS = 4096
"""The most torch threads (or workers) a command accepts."""
threads = whole(1, MAX_THREADS)
"""A count of threads or worker processes: 1 to :data:`MAX_THREADS`."""


def shown(text: object) -> Any:
    """``text`` as a rich :class:`~rich.text.Text`: printed as it is, never read as markup (``[/red]``)."""
    from rich.text import Text

    return Text(str(text))


def real(
    low: float = -math.inf, high: float = math.inf, low_open: bool = True, high_open: bool = True
) -> Callable[[str], float]:
    """A finite number between ``low`` and ``high`` (open or closed ends)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (math.isfinite(value) and above and below):
            left, right = ("(" if low_open else "["), (")" if high_open else "]")
            raise argparse.ArgumentTypeError(f"expected a number in {left}{low:g}, {high:g}{right}, got {text}")
        return value

    return parse


def names(text: str) -> list[str]:
    """A comma-separated list of names (optimizers, workloads)."""
    found = [name.strip() for name in text.split(",") if name.strip()]
    if not found:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return found


def output(suffix: str) -> Callable[[str], Path]:
    """A file name ending in ``suffix`` in a folder that exists."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"expected a {suffix} file name, got {text!r}")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"the folder {str(path.parent)!r} does not exist")
        return path

    return parse


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the duration (None: unchanged)."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


PIPE_WIDTH = 160
"""Columns of tables written to a pipe or a file (a terminal uses its own width)."""


def wide_console(**options: Any) -> Any:
    """A rich Console for the commands' tables; in a pipe or a log, wide enough that cells do not wrap.

    Rich falls back to 80 columns when the output is not a terminal; ``COLUMNS``, when set,
    still decides.
    """
    import os

    from rich.console import Console

    out = Console(highlight=False, **options)
    if not out.is_terminal and "COLUMNS" not in os.environ and "width" not in options:
        out.width = PIPE_WIDTH
    return out

"""Milliseconds per step, measured in interleaved rounds so that every contender sees the
same machine.

Each :class:`Contender` is built, then takes ``warmup`` untimed steps (state creation and
compilation happen there); then ``steps`` rounds follow, and in each round every contender
takes one timed step. The order rotates from round to round, so no contender always runs
first or right after the same neighbour. The figure per contender is the median over its
rounds; on CUDA each step is bracketed by ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from optarena.bench.bandwidth import synchronize
from optarena.checks import whole_numbers

_TORCH_DIR = str(Path(torch.__file__).parent)

DEFAULT_PEER_STEP_LIMIT_S = 30.0
"""Seconds a peer's warm-up step may take before the peer is reported and left untimed."""
FIRST_STEP_ALLOWANCE = 10.0
"""The first warm-up step may take this many times the limit: it compiles, where the peer does."""


@dataclass(eq=False)
class Contender:
    """One optimizer to time: a label, and how to build it over fresh parameters."""

    label: str
    build: Callable[[], torch.optim.Optimizer]
    optimizer: torch.optim.Optimizer | None = None
    samples: list[float] = field(default_factory=list)
    """Seconds per timed step, in round order."""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def median_ms(self) -> float | None:
        return 1e3 * statistics.median(self.samples) if self.samples else None

    @property
    def mean_ms(self) -> float | None:
        """The mean: the step time amortised over the rounds, the figure for an optimizer whose
        steps differ in cost (a preconditioner refreshed every ``precondition_frequency`` steps,
        timed over a multiple of that many rounds)."""
        return 1e3 * statistics.fmean(self.samples) if self.samples else None

    def step(self) -> None:
        assert self.optimizer is not None
        self.optimizer.step()


def _keep(message: warnings.WarningMessage) -> bool:
    """Warnings worth reporting: those not raised from inside torch itself."""
    return not str(message.filename).startswith(_TORCH_DIR)


def _guarded(contender: Contender, action: Callable[[], None]) -> bool:
    """Run ``action``; on failure record the error and report False. Keeps the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            action()
        except Exception as error:  # a contender that fails is reported, the others go on
            contender.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
            contender.optimizer = None
            return False
    for message in caught:
        text = f"{message.category.__name__}: {str(message.message).splitlines()[0]}"[:300]
        if _keep(message) and text not in contender.warnings:
            contender.warnings.append(text)
    return True


class StepLimitExceeded(Exception):
    """A warm-up step ran past its time limit."""


@contextmanager
def step_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`StepLimitExceeded` in the block once ``seconds`` have passed (checked
    between Python operations: one long native call, an SVD say, still runs to its end).
    No limit for ``None``, off the main thread, or where ``SIGALRM`` does not exist."""
    if seconds is None or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise StepLimitExceeded(f"a step ran past the limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def warm_up(contender: Contender, warmup: int, device: torch.device, step_limit_s: float | None = None) -> bool:
    """Build the contender and take its untimed steps; False (with the error kept) on failure,
    or when a step takes longer than ``step_limit_s`` (the first one, which may compile:
    :data:`FIRST_STEP_ALLOWANCE` times that), a contender too slow to time."""

    def build_and_step() -> None:
        contender.optimizer = contender.build()
        for index in range(warmup):
            limit = None if step_limit_s is None else step_limit_s * (FIRST_STEP_ALLOWANCE if index == 0 else 1.0)
            with step_time_limit(limit):
                contender.step()
                synchronize(device)

    return _guarded(contender, build_and_step)


def time_step(contender: Contender, device: torch.device) -> None:
    """One timed step, appended to ``contender.samples``."""

    def timed() -> None:
        synchronize(device)
        start = time.perf_counter()
        contender.step()
        synchronize(device)
        contender.samples.append(time.perf_counter() - start)

    _guarded(contender, timed)


def interleaved_rounds(
    contenders: list[Contender], steps: int, warmup: int, device: torch.device | str = "cpu"
) -> list[Contender]:
    """Warm up every contender, then time ``steps`` rotating rounds; returns the contenders."""
    device = torch.device(device)
    whole_numbers(steps=steps, warmup=warmup)
    for contender in contenders:
        if contender.optimizer is None and contender.error is None:
            warm_up(contender, warmup, device)
    live = [c for c in contenders if c.error is None]
    for round_index in range(steps):
        shift = round_index % len(live) if live else 0
        for contender in live[shift:] + live[:shift]:
            if contender.error is None:
                time_step(contender, device)
    return contenders

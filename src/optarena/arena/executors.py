"""Where trials run: a local process pool (default), the calling process, or a Ray cluster.

Every executor turns a :class:`~optarena.arena.trial.TrialSpec` into a
:class:`concurrent.futures.Future` of its :class:`~optarena.arena.trial.TrialResult`, so the
race drives them all the same way. ``workers`` is how many trials run at once; each trial
uses ``threads`` torch threads, chosen so that ``workers * threads`` does not exceed the
cores (tiny models run fastest on one thread each).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from optarena.arena.trial import TrialSpec, prepare_worker, run_trial
from optarena.checks import whole_numbers

EXECUTORS = ("local", "inline", "ray")


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads per trial so that ``workers`` trials at once do not oversubscribe the cores."""
    return max(1, (cores or available_cores()) // max(1, workers))


class Executor:
    """Runs trial specs; ``submit`` returns a future of the result."""

    name = "executor"

    def __init__(self, workers: int, threads: int):
        whole_numbers(workers=workers, threads=threads)
        self.workers = workers
        self.threads = threads

    def submit(self, spec: TrialSpec) -> Future:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(self, specs: list[TrialSpec]) -> None:
        """Start the workers now and have each do, ahead of the trials, what the first trial of each
        spec does before it trains (:func:`~optarena.arena.trial.prepare_worker`); the race goes on
        planning meanwhile. Nothing by default: executors whose workers are not started here."""

    def shutdown(self, now: bool = False) -> None:
        """Stop the workers; ``now`` abandons trials still running instead of waiting for them."""

    def describe(self) -> str:
        return f"{self.workers} {self.name} worker{'s' if self.workers != 1 else ''} x {self.threads} thread{'s' if self.threads != 1 else ''}"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        self.shutdown(now=kind is not None)


class InlineExecutor(Executor):
    """Runs each trial in the calling process when submitted (for debugging and small runs)."""

    name = "inline"

    def __init__(self, threads: int | None = None):
        super().__init__(1, threads or 1)
        self._threads = threads

    def describe(self) -> str:
        if self._threads is None:
            return "inline, torch's current threads"
        return super().describe()

    def submit(self, spec: TrialSpec) -> Future:
        future: Future = Future()
        try:
            future.set_result(run_trial(replace(spec, threads=self._threads)))
        except Exception as error:
            future.set_exception(error)
        return future


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (e.g. killed with SIGKILL)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.5)


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


class LocalExecutor(Executor):
    """A pool of ``workers`` fresh Python processes (spawned, so no state leaks in), one trial each at a time."""

    name = "local"

    def __init__(self, workers: int, threads: int):
        super().__init__(workers, threads)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )
        self._trials: set[Future] = set()

    def submit(self, spec: TrialSpec) -> Future:
        future = self._pool.submit(run_trial, replace(spec, threads=self.threads))
        self._trials.add(future)
        future.add_done_callback(self._trials.discard)  # a finished trial's result is not kept here
        return future

    def prepare(self, specs: list[TrialSpec]) -> None:
        # One task per worker: the pool starts a process for each task it cannot give to an idle one.
        specs = [replace(spec, threads=self.threads) for spec in specs]
        for _ in range(self.workers):
            self._pool.submit(prepare_worker, specs)

    def shutdown(self, now: bool = False) -> None:
        if now or all(future.done() for future in list(self._trials)):
            # Workers with no trial to run hold nothing, so they are stopped rather than left to
            # tear their interpreters down (seconds, with torch loaded); workers running trials are
            # stopped only when asked: concurrent.futures has no public way to do it before 3.14.
            processes = getattr(self._pool, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Trials as Ray tasks of ``threads`` CPUs each, on the cluster at ``address``.

    ``address`` None or ``"local"`` starts a local Ray instance with ``workers`` CPUs;
    ``"auto"`` or ``"ray://host:10001"`` joins a running cluster, where ``workers``
    (default: the cluster's CPUs divided by ``threads``) bounds the trials in flight.
    """

    name = "ray"

    def __init__(self, workers: int | None, threads: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError("the ray executor needs Ray: pip install 'optarena[ray]'") from None
        import logging

        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address in (None, "local"):
                ray.init(
                    num_cpus=(workers or available_cores()) * threads,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            else:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            self._started = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        super().__init__(workers, threads)
        self._remote = ray.remote(run_trial).options(num_cpus=threads, max_retries=0)
        self._running: dict[Future, Any] = {}

    def submit(self, spec: TrialSpec) -> Future:
        ref = self._remote.remote(replace(spec, threads=self.threads))
        future = ref.future()
        self._running[future] = ref
        future.add_done_callback(lambda done: self._running.pop(done, None))
        return future

    def shutdown(self, now: bool = False) -> None:
        for ref in list(self._running.values()):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # finished meanwhile, or its node is gone
                pass
        self._running.clear()
        if self._started:
            self._ray.shutdown()


def make_executor(
    kind: str, workers: int | None = None, threads: int | None = None, address: str | None = None
) -> Executor:
    """The executor named ``kind`` (one of :data:`EXECUTORS`)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; allowed: {', '.join(EXECUTORS)}")
    if address is not None and kind != "ray":
        raise ValueError("--address is for the ray executor (--executor ray)")
    if kind == "inline":
        return InlineExecutor(threads or available_cores())
    if kind == "ray":
        return RayExecutor(workers, threads or 1, address)
    workers = workers or available_cores()
    return LocalExecutor(workers, threads or threads_per_worker(workers))

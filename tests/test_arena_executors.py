"""The local pool: prepared workers give the numbers of the calling process, and stop when done."""

from __future__ import annotations

import signal

from optarena.arena.executors import LocalExecutor
from optarena.arena.trial import TrialSpec, run_trial


def _spec(optimizer: str, seed: int) -> TrialSpec:
    return TrialSpec("toy_workloads:classifier", {}, None, "w", optimizer, {"lr": 0.01}, seed, "0", 1)


def test_prepared_workers_give_the_numbers_of_this_process_and_are_stopped_once_idle():
    specs = [_spec("adam", 0), _spec("lamb", 1)]
    executor = LocalExecutor(workers=2, threads=1)
    try:
        executor.prepare(specs)
        results = [future.result(timeout=300) for future in [executor.submit(spec) for spec in specs]]
        workers = list(executor._pool._processes.values())
    finally:
        executor.shutdown()
    assert [r.metrics for r in results] == [run_trial(spec).metrics for spec in specs]
    # With every trial finished the idle workers are stopped, not left to tear their interpreters down.
    assert workers and all(worker.exitcode == -signal.SIGTERM for worker in workers)

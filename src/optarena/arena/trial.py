"""One trial: one optimizer with fixed hyperparameters, trained on one workload from one seed.

:func:`run_trial` is what every executor runs, in a worker process, on a Ray node or
inline. It follows the loop of :mod:`optarena.arena.workload`: ``train_loss(t)``,
``backward()``, ``step()``; ``evaluate()`` every ``eval_every`` steps and after the last.
A non-finite training loss or evaluated target metric ends the run as *diverged*: a
result, not an error; so does a ``FloatingPointError`` from the optimizer's step (a
non-finite gradient under ``nonfinite="raise"``, or an estimate that outgrew the floats, as
D-Adaptation's ``d`` can). The result depends only on (workload, optimizer,
hyperparameters, seed) and the number of torch threads, never on which process ran it or
when.
"""

from __future__ import annotations

import hashlib
import math
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from optarena.arena.fingerprint import workload_fingerprint
from optarena.arena.schedule_options import make_scheduler, split_schedule
from optarena.arena.store import canonical_json
from optarena.arena.trial_diagnostics import (
    SharpnessProbe,
    SignalNames,
    measures_sharpness,
    records_signals,
    reserved,
    spectrum_rows,
)
from optarena.cli_types import torch_threads


def digest(value: Any) -> str:
    """A short stable hash (128 bits of SHA-256) of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:32]


def workload_config(
    workload: Any, options: dict[str, Any], spec: str | None = None, data_dir: str | Path | None = None
) -> dict[str, Any]:
    """What identifies a workload's runs: its name, budget, target, the options it was built with,
    and (given its ``spec``) the fingerprint of its definition and data
    (:func:`optarena.arena.fingerprint.workload_fingerprint`)."""
    target = workload.target
    config = {
        "name": workload.name,
        "steps": int(workload.steps),
        "eval_every": int(workload.eval_every),
        "target": [target.metric, float(target.value), target.mode],
        "options": {k: v for k, v in sorted(options.items())},
    }
    batch_size = getattr(workload, "batch_size", None)
    if batch_size is not None:
        config["batch_size"] = int(batch_size)
    if spec is not None:
        config.update(workload_fingerprint(workload, spec, data_dir))
    return config


def jsonable_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as JSON values (tuples as lists), keys sorted."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(hyperparameters.items())}


def trial_key(workload_key: str, optimizer: str, hyperparameters: dict[str, Any], seed: int, version: str) -> str:
    """The store key of a trial: a hash of everything its result depends on."""
    return digest(
        {
            "workload": workload_key,
            "optimizer": optimizer,
            "hyperparameters": jsonable_hyperparameters(hyperparameters),
            "seed": int(seed),
            "optarena": version,
        }
    )


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one trial; plain data, so it pickles to any process."""

    workload: str
    """The workload spec: a built-in name or ``package.module:factory``."""
    options: dict[str, Any]
    data_dir: str | None
    workload_key: str
    optimizer: str
    hyperparameters: dict[str, Any]
    seed: int
    version: str
    threads: int | None = None
    """torch intra-op threads for the run (None: leave the process's setting)."""
    signals: bool = False
    """Record the optimizer's signals at each evaluation (:mod:`optarena.arena.trial_diagnostics`)."""
    sharpness: bool = False
    """Measure the sharpness at each evaluation (a few Hessian-vector products each)."""
    spectrum: bool = False
    """Store the Hessian's eigenvalue density at the first and the last evaluation."""

    @property
    def key(self) -> str:
        """What the result depends on; not whether diagnostics were recorded (they change no result)."""
        return trial_key(self.workload_key, self.optimizer, self.hyperparameters, self.seed, self.version)

    def describe(self) -> str:
        settings = ", ".join(f"{k}={format_value(v)}" for k, v in self.hyperparameters.items())
        return f"{self.optimizer}({settings}) seed {self.seed} on {self.workload}"


def format_value(value: Any) -> str:
    """Compact text for a hyperparameter value: 4 significant digits for floats."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass
class TrialResult:
    """A finished trial: its summary row for the store and its per-step metrics."""

    key: str
    status: str
    """``"finished"`` or ``"diverged"``."""
    steps_done: int
    diverged_step: int | None
    final_metric: float | None
    best_metric: float | None
    best_step: int | None
    final_train_loss: float | None
    steps_to_target: int | None
    seconds_to_target: float | None
    train_seconds: float
    eval_seconds: float
    threads: int | None
    host: str
    finished_at: str
    metrics: list[tuple[str, int, float]] = field(default_factory=list)
    """``(name, step, value)``: ``train_loss`` at step t is measured after t updates, evaluated
    metrics at step t after t updates; the diagnostics of evaluation step t too
    (:mod:`optarena.arena.trial_diagnostics`)."""

    def row(self, spec: TrialSpec) -> dict[str, Any]:
        """The ``trials`` row for this result."""
        return {
            "key": self.key,
            "workload_key": spec.workload_key,
            "optimizer": spec.optimizer,
            "hyperparameters": canonical_json(jsonable_hyperparameters(spec.hyperparameters)),
            "seed": spec.seed,
            "optarena_version": spec.version,
            "status": self.status,
            "steps_done": self.steps_done,
            "diverged_step": self.diverged_step,
            "final_metric": self.final_metric,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "final_train_loss": self.final_train_loss,
            "steps_to_target": self.steps_to_target,
            "seconds_to_target": self.seconds_to_target,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "threads": self.threads,
            "host": self.host,
            "finished_at": self.finished_at,
        }


class TrialFailed(RuntimeError):
    """A trial raised an exception (a bug in a workload or optimizer, not a divergence)."""


# Workloads built in this process, by (spec, options, data_dir): building one may load data.
_WORKLOADS: dict[tuple[str, str, str | None], Any] = {}


def resolve_workload(spec: str, options: dict[str, Any], data_dir: str | None) -> Any:
    """The workload named by ``spec`` (a built-in name or ``package.module:factory``)."""
    from optarena.arena.workloads import get_workload

    return get_workload(spec, data_dir=data_dir, **options)


def load_workload(spec: str, options: dict[str, Any], data_dir: str | None) -> Any:
    """The workload for ``spec``, built once per process."""
    cache_key = (spec, canonical_json(options), data_dir)
    if cache_key not in _WORKLOADS:
        _WORKLOADS[cache_key] = resolve_workload(spec, options, data_dir)
    return _WORKLOADS[cache_key]


def prepare_worker(specs: list[TrialSpec]) -> None:
    """Do once, ahead of the trials, what the first trial of each of ``specs`` does before it trains.

    Loads each workload (its data stays cached in this process), sets up its model and builds
    each optimizer on it, so that the imports and the data a worker needs are paid while the
    race is still being planned rather than by its first trials. Trains nothing and changes no
    result: every trial seeds its own random streams, and torch's global generator is restored.
    A spec that fails here is left to its trial, which reports the error.
    """
    for spec in specs:
        try:
            with torch_threads(spec.threads), torch.random.fork_rng(devices=[]):
                _set_up(spec)
        except Exception:  # the trial itself raises it, with its description
            continue


def _set_up(spec: TrialSpec) -> tuple[Any, Any, Any, Any]:
    """A trial's workload, seeded model, optimizer and schedule settings."""
    from optarena.registry import lookup

    workload = load_workload(spec.workload, spec.options, spec.data_dir)
    entry = lookup(spec.optimizer)
    torch.manual_seed(spec.seed)  # for workloads that draw from torch's global generator
    trainable = workload.setup(spec.seed, sparse=bool(getattr(entry.cls, "supports_sparse", False)))
    hyperparameters, schedule = split_schedule(spec.hyperparameters)
    optimizer = entry.build(trainable.model.parameters(), **hyperparameters)
    return workload, trainable, optimizer, schedule


def run_trial(spec: TrialSpec) -> TrialResult:
    """Run ``spec`` and return its result; exceptions other than divergence propagate as :class:`TrialFailed`."""
    with torch_threads(spec.threads):
        try:
            return _train(spec)
        except TrialFailed:
            raise
        except Exception as error:
            raise TrialFailed(f"{spec.describe()} failed: {type(error).__name__}: {error}") from error


def _train(spec: TrialSpec) -> TrialResult:
    from optarena.optim.schedule_free import at_evaluation_point

    workload, trainable, optimizer, schedule = _set_up(spec)
    target = workload.target
    steps, eval_every = int(workload.steps), int(workload.eval_every)
    scheduler = make_scheduler(optimizer, schedule, steps)
    names = SignalNames(trainable.model, optimizer) if spec.signals and records_signals(optimizer) else None
    probe = None
    if (spec.sharpness or spec.spectrum) and not measures_sharpness(trainable):
        wanted = " and ".join(name for name, on in (("sharpness", spec.sharpness), ("spectrum", spec.spectrum)) if on)
        raise TrialFailed(
            f"workload {workload.name!r}: {wanted} needs runs that expose loss_fn(outputs, targets) and "
            f"train_data (inputs, targets), as the built-in classifiers do; race it without {wanted}"
        )
    if spec.sharpness:
        probe = SharpnessProbe(trainable, optimizer)
    snapshots = 0

    metrics: list[tuple[str, int, float]] = []
    status, diverged_step = "finished", None
    final = best = best_step = steps_to_target = seconds_to_target = last_loss = None
    train_seconds = eval_seconds = 0.0
    done = 0
    for step in range(steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = trainable.train_loss(step)
        value = float(loss.detach())
        if not math.isfinite(value):
            train_seconds += time.perf_counter() - started
            status, diverged_step = "diverged", step
            break
        loss.backward()
        evaluating = (step + 1) % eval_every == 0 or step + 1 == steps
        try:
            if names is not None and evaluating:
                optimizer.record_signals(1)  # this step only: the signals of the step that ends at the evaluation
                optimizer.step()
                optimizer.record_signals(0)
            else:
                optimizer.step()
        except FloatingPointError:  # a non-finite gradient refused, or an estimate that left the floats
            train_seconds += time.perf_counter() - started
            status, diverged_step = "diverged", step
            break
        if scheduler is not None:
            scheduler.step()
        train_seconds += time.perf_counter() - started
        metrics.append(("train_loss", step, value))
        last_loss = value
        done = step + 1
        if done % eval_every and done != steps:
            continue
        started = time.perf_counter()
        with torch.no_grad(), at_evaluation_point(optimizer):  # Schedule-Free: at the average x
            evaluated = trainable.evaluate()
        eval_seconds += time.perf_counter() - started
        if target.metric not in evaluated:
            raise TrialFailed(
                f"workload {workload.name!r}: evaluate() returned {sorted(evaluated)} "
                f"without its target metric {target.metric!r}"
            )
        taken = [name for name in evaluated if reserved(name)]
        if taken:
            raise TrialFailed(
                f"workload {workload.name!r}: evaluate() returned {sorted(taken)}; metric names starting with "
                "'signal:' or 'diagnostic:' are kept for the arena's diagnostics, rename them"
            )
        for name, number in sorted(evaluated.items()):
            metrics.append((name, done, float(number)))
        if names is not None:
            metrics.extend(names.rows(optimizer.signals, done))
        final = float(evaluated[target.metric])
        if not math.isfinite(final):
            status, diverged_step, final = "diverged", done, None
            break
        if probe is not None:  # counted as evaluation time, never as training time
            started = time.perf_counter()
            metrics.extend(probe.rows(done))
            eval_seconds += time.perf_counter() - started
        if spec.spectrum and (snapshots == 0 or done == steps):  # the first and the last evaluation
            started = time.perf_counter()
            metrics.extend(spectrum_rows(trainable, done))
            snapshots += 1
            eval_seconds += time.perf_counter() - started
        if best is None or target.better(final, best):
            best, best_step = final, done
        if steps_to_target is None and target.reached(final):
            steps_to_target, seconds_to_target = done, train_seconds

    return TrialResult(
        key=spec.key,
        status=status,
        steps_done=done,
        diverged_step=diverged_step,
        final_metric=final if status == "finished" else None,
        best_metric=best,
        best_step=best_step,
        final_train_loss=last_loss,
        steps_to_target=steps_to_target,
        seconds_to_target=seconds_to_target,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        threads=torch.get_num_threads(),
        host=socket.gethostname(),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=metrics,
    )

"""What a trial records beside its metrics: the optimizer's signals and, on request, the sharpness
and snapshots of the Hessian's spectrum.

Both are measured at the trial's evaluation steps and stored as rows of the ``metrics`` table
(no schema change: stores written before still open, and optarena versions that do not know
these rows read past them):

- ``signal:<signal>:<parameter>``: a per-tensor signal of the optimizer
  (:meth:`optarena.optim.base.ChainOptimizer.record_signals`), recorded during the step that
  ends at the evaluation step, the parameter named as in the model's ``named_parameters()``.
  At most :data:`MAX_SIGNAL_TENSORS` parameters per signal: a model with more tensors has an
  evenly spaced selection recorded (the first and the last included).
- ``diagnostic:sharpness``: the top eigenvalue of the training loss's Hessian on a fixed batch
  of :data:`SHARPNESS_SAMPLES` training examples (Lanczos, warm-started from the previous
  measurement's eigenvector); ``diagnostic:lr``: the first param group's learning rate at that
  step; ``diagnostic:threshold``: the optimizer's stability threshold on the sharpness where
  one is defined (gradient descent and heavy-ball momentum: ``2/lr``, ``(2+2β)/lr``, ...).
- ``diagnostic:preconditioned_sharpness`` and ``diagnostic:preconditioned_threshold``, beside
  the sharpness, for adaptive optimizers with a diagonal preconditioner ``P``
  (:mod:`optarena.diagnostics.preconditioned`): the top eigenvalue of ``P^-1 H`` on the same
  batch and the threshold it is stable below, both of that step.
- ``diagnostic:spectrum_node:<i>`` and ``diagnostic:spectrum_weight:<i>``, on request at the
  first and the last evaluation: the Hessian's eigenvalue density on the same batch as Gauss
  quadrature nodes and weights (stochastic Lanczos quadrature, :data:`SPECTRUM_PROBES` probes of
  :data:`SPECTRUM_STEPS` steps, ``i`` numbering the nodes of all probes; the weights sum to 1).

Names that start with :data:`RESERVED_PREFIXES` are kept for these rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

SIGNAL_PREFIX = "signal:"
DIAGNOSTIC_PREFIX = "diagnostic:"
RESERVED_PREFIXES = (SIGNAL_PREFIX, DIAGNOSTIC_PREFIX)
SHARPNESS = DIAGNOSTIC_PREFIX + "sharpness"
LEARNING_RATE = DIAGNOSTIC_PREFIX + "lr"
THRESHOLD = DIAGNOSTIC_PREFIX + "threshold"
PRECONDITIONED_SHARPNESS = DIAGNOSTIC_PREFIX + "preconditioned_sharpness"
PRECONDITIONED_THRESHOLD = DIAGNOSTIC_PREFIX + "preconditioned_threshold"
SPECTRUM_NODE = "spectrum_node:"
SPECTRUM_WEIGHT = "spectrum_weight:"

MAX_SIGNAL_TENSORS = 64
"""Parameters recorded per signal and evaluation, at most (each one row of the store)."""
SHARPNESS_SAMPLES = 256
"""Training examples in the fixed batch the sharpness is measured on."""
SHARPNESS_TOL = 1e-3
"""Lanczos stops when the top Ritz pair's residual is below this fraction of its value."""
SHARPNESS_MAX_STEPS = 100
SHARPNESS_BATCH_SEED = 0
"""The batch is the same for every seed and optimizer: drawn by this seed, not the run's."""
SPECTRUM_STEPS = 24
"""Lanczos steps per probe of a spectrum snapshot: the quadrature is exact for polynomials up to degree 47."""
SPECTRUM_PROBES = 2
SPECTRUM_SEED = 0
"""The probes are the same at every snapshot, for every seed and optimizer."""


def signal_metric(signal: str, parameter: str) -> str:
    """The metric name of ``signal`` for ``parameter``."""
    return f"{SIGNAL_PREFIX}{signal}:{parameter}"


def parse_signal_metric(name: str) -> tuple[str, str] | None:
    """``(signal, parameter)`` of a signal's metric name, or None for any other name."""
    if not name.startswith(SIGNAL_PREFIX):
        return None
    signal, colon, parameter = name[len(SIGNAL_PREFIX) :].partition(":")
    return (signal, parameter) if colon and signal else None


def reserved(name: str) -> bool:
    """Whether a metric name is kept for diagnostics (a workload may not evaluate one)."""
    return name.startswith(RESERVED_PREFIXES)


def records_signals(optimizer: Any) -> bool:
    """Whether ``optimizer`` can record signals (optarena's optimizers and wrappers; not torch.optim's)."""
    return callable(getattr(optimizer, "record_signals", None))


def kept_positions(count: int, limit: int = MAX_SIGNAL_TENSORS) -> list[int]:
    """Which of ``count`` parameters (in model order) are recorded: all, or ``limit`` evenly spaced."""
    if count <= limit:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, limit).round()})


class SignalNames:
    """The optimizer's labels of parameters (its names, or positions ``param_groups[i]['params'][j]``)
    mapped to the model's names, for the parameters that are recorded."""

    def __init__(self, model: nn.Module, optimizer: Any, limit: int = MAX_SIGNAL_TENSORS):
        named = list(model.named_parameters())
        kept = {id(named[i][1]): named[i][0] for i in kept_positions(len(named), limit)}
        self.labels: dict[str, str] = {}
        for index, group in enumerate(optimizer.param_groups):
            names = group.get("param_names")
            for position, p in enumerate(group["params"]):
                if id(p) in kept:
                    label = names[position] if names else f"param_groups[{index}]['params'][{position}]"
                    self.labels[label] = kept[id(p)]

    def rows(self, signals: dict[str, dict[str, float]], step: int) -> list[tuple[str, int, float]]:
        """The metric rows of one step's signals (parameters not recorded are left out)."""
        out = []
        for signal in sorted(signals):
            for label, value in signals[signal].items():
                name = self.labels.get(label)
                if name is not None:
                    out.append((signal_metric(signal, name), step, float(value)))
        return out


def sharpness_batch(trainable: Any, samples: int = SHARPNESS_SAMPLES) -> tuple[Any, Any]:
    """A fixed batch of ``trainable.train_data``: ``samples`` examples drawn by a fixed seed."""
    inputs, targets = trainable.train_data
    count = len(targets)
    if count <= samples:
        return inputs, targets
    chosen = torch.randperm(count, generator=torch.Generator().manual_seed(SHARPNESS_BATCH_SEED))[:samples]
    chosen = chosen.sort().values.to(targets.device)
    return inputs[chosen], targets[chosen]


def measures_sharpness(trainable: Any) -> bool:
    """Whether a run exposes what the sharpness needs: ``loss_fn`` and ``train_data``."""
    return callable(getattr(trainable, "loss_fn", None)) and hasattr(trainable, "train_data")


class SharpnessProbe:
    """The sharpness of a run at its evaluation steps, warm-started from the last eigenvector; for an
    adaptive optimizer with a diagonal preconditioner, the preconditioned sharpness too."""

    def __init__(self, trainable: Any, optimizer: Any):
        self.model = trainable.model
        self.loss_fn = trainable.loss_fn
        self.batch = sharpness_batch(trainable)
        self.optimizer = optimizer
        self.start: torch.Tensor | None = None
        self.preconditioned_start: torch.Tensor | None = None

    def _threshold(self) -> float | None:
        from optarena.diagnostics.preconditioned import rule_for, stability_threshold

        try:
            if rule_for(self.optimizer).diagonal is not None:
                return None  # an adaptive optimizer's threshold bounds P^-1 H, not H
            return float(stability_threshold(self.optimizer))
        except (TypeError, ValueError):
            return None

    def _top(self, operator: Any, start: torch.Tensor | None) -> tuple[float, torch.Tensor]:
        from optarena.diagnostics.eigen import top_eigenpairs

        # warn=False: when max_steps ends the search, its estimate so far is stored
        result = top_eigenpairs(operator, 1, tol=SHARPNESS_TOL, max_steps=SHARPNESS_MAX_STEPS, start=start, warn=False)
        return float(result.eigenvalues[0]), result.eigenvectors[0]

    def _preconditioned(self, hessian: Any, step: int) -> list[tuple[str, int, float]]:
        """The top eigenvalue of ``P^-1 H`` and its threshold, for optimizers with a diagonal ``P``."""
        from optarena.diagnostics.preconditioned import (
            PreconditionedOperator,
            diagonal_preconditioner,
            stability_threshold,
        )

        try:
            diagonal = diagonal_preconditioner(self.optimizer, self.model)
            if diagonal is None:  # SGD: P = 1, the sharpness itself
                return []
            threshold = float(stability_threshold(self.optimizer))
            operator = PreconditionedOperator(hessian, diagonal)
        except (TypeError, ValueError):  # no rule, no state yet, groups that disagree, P not positive
            return []
        value, self.preconditioned_start = self._top(operator, self.preconditioned_start)
        return [(PRECONDITIONED_SHARPNESS, step, value), (PRECONDITIONED_THRESHOLD, step, threshold)]

    def rows(self, step: int) -> list[tuple[str, int, float]]:
        from optarena.diagnostics.operator import HessianOperator

        operator = HessianOperator(self.model, self.loss_fn, self.batch)
        value, self.start = self._top(operator, self.start)
        out = [(SHARPNESS, step, value)]
        lr = self.optimizer.param_groups[0].get("lr")
        if lr is not None:
            out.append((LEARNING_RATE, step, float(lr)))
        threshold = self._threshold()
        if threshold is not None:
            out.append((THRESHOLD, step, threshold))
        return out + self._preconditioned(operator, step)


def spectrum_rows(trainable: Any, step: int) -> list[tuple[str, int, float]]:
    """A snapshot of the Hessian's eigenvalue density on :func:`sharpness_batch`: the nodes and
    weights of stochastic Lanczos quadrature, the weights divided by the number of probes."""
    from optarena.diagnostics.density import spectral_density

    density = spectral_density(
        trainable.model,
        trainable.loss_fn,
        sharpness_batch(trainable),
        steps=SPECTRUM_STEPS,
        probes=SPECTRUM_PROBES,
        grid=2,
        seed=SPECTRUM_SEED,
    )
    nodes = torch.cat(density.nodes).tolist()
    weights = (torch.cat(density.weights) / len(density.weights)).tolist()
    width = len(str(len(nodes) - 1))
    rows = [(f"{DIAGNOSTIC_PREFIX}{SPECTRUM_NODE}{i:0{width}d}", step, v) for i, v in enumerate(nodes)]
    return rows + [(f"{DIAGNOSTIC_PREFIX}{SPECTRUM_WEIGHT}{i:0{width}d}", step, w) for i, w in enumerate(weights)]

"""Your own workload: ``package.module:factory`` imported, called and checked.

The factory is any callable (a function, a class) that returns an object with the
attributes of :class:`optarena.arena.workload.Workload`. It receives the options it
declares: ``quick`` and ``data_dir`` only if its signature names them (they are hints a
factory may ignore), every other option must be a parameter it accepts.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from optarena.arena.workload import MODES, Target
from optarena.checks import whole_number

HINTS = ("quick", "data_dir")
"""Options passed to a factory only when it declares them."""


class WorkloadError(ValueError):
    """A workload spec that cannot be resolved, or a workload that breaks the protocol."""


def split_spec(spec: str) -> tuple[str, str]:
    """``"package.module:factory"`` -> ``("package.module", "factory")``."""
    module, sep, attribute = spec.partition(":")
    if not sep or not module.strip() or not attribute.strip() or ":" in attribute:
        raise WorkloadError(
            f"Workload spec {spec!r} is not of the form package.module:factory "
            "(a module path, one colon, a callable in that module)."
        )
    return module.strip(), attribute.strip()


def import_factory(spec: str) -> Any:
    """The object named by ``package.module:factory``; the current directory is searched last."""
    module_name, attribute = split_spec(spec)
    cwd = str(Path.cwd())
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise WorkloadError(
                f"Cannot import module {module_name!r} for workload {spec!r}: no module named {missing!r}. "
                "Install it, or run from the folder that holds it, or add that folder to PYTHONPATH."
            ) from error
        raise WorkloadError(f"Importing {module_name!r} for workload {spec!r} failed: {error}") from error
    except Exception as error:
        raise WorkloadError(
            f"Importing {module_name!r} for workload {spec!r} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise WorkloadError(
                f"Module {module_name!r} has no attribute {attribute!r} for workload {spec!r}. "
                f"Its public callables: {', '.join(public) or 'none'}."
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise WorkloadError(
            f"{spec!r} is a {type(obj).__name__}, not callable: expected a function or class that returns a workload."
        )
    return obj


def call_factory(factory: Any, spec: str, options: dict[str, Any]) -> Any:
    """``factory(**options)``, passing the hints in :data:`HINTS` only when it declares them."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = {
            name
            for name, p in params.items()
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        }
        passed: dict[str, Any] = {}
        for key, value in options.items():
            if takes_any or key in accepted:
                passed[key] = value
            elif key not in HINTS:
                raise TypeError(
                    f"Workload factory {spec!r} does not accept the option {key!r}. "
                    f"It accepts: {', '.join(sorted(accepted)) or 'no options'}."
                )
    else:
        passed = dict(options)
    try:
        return factory(**passed)
    except Exception as error:
        raise WorkloadError(f"Workload factory {spec!r} raised {type(error).__name__}: {error}") from error


def check_workload(workload: Any, origin: str) -> Any:
    """``workload`` if it has every attribute of the protocol; else a WorkloadError naming what is wrong."""
    problems = []
    missing = [a for a in ("name", "description", "target", "steps", "eval_every", "setup") if not hasattr(workload, a)]
    if missing:
        raise WorkloadError(
            f"{origin} returned a {type(workload).__name__} without the workload attribute(s) "
            f"{', '.join(missing)}; a workload needs name, description, target, steps, eval_every and "
            "setup(seed, *, sparse=False)."
        )
    if not isinstance(workload.name, str) or not workload.name.strip():
        problems.append(f"name must be a non-empty string, got {workload.name!r}")
    if not isinstance(workload.description, str):
        problems.append(f"description must be a string, got {workload.description!r}")
    target = workload.target
    if not isinstance(target, Target):
        problems.append(f"target must be an optarena.arena.Target(metric, value, mode), got {target!r}")
    elif target.mode not in MODES:  # pragma: no cover - Target validates its mode
        problems.append(f"target.mode must be one of {MODES}")
    for attribute in ("steps", "eval_every"):
        try:
            whole_number(attribute, getattr(workload, attribute))
        except ValueError as error:
            problems.append(str(error))
    if not callable(workload.setup):
        problems.append("setup must be a method setup(seed, *, sparse=False)")
    if problems:
        raise WorkloadError(f"{origin} returned a workload that breaks the protocol: " + "; ".join(problems) + ".")
    return workload


def check_trainable(trainable: Any, workload: Any) -> dict[str, float]:
    """Run one step of ``trainable`` by the protocol and return its ``evaluate()`` metrics.

    Checks that ``model`` is an ``nn.Module`` with parameters, that ``train_loss(0)`` is a
    finite scalar with a graph, and that ``evaluate()`` returns the target's metric as a number.
    A :class:`WorkloadError` names the first thing that is wrong.
    """
    origin = f"{workload.name}.setup()"
    for attribute in ("model", "train_loss", "evaluate"):
        if not hasattr(trainable, attribute):
            raise WorkloadError(
                f"{origin} returned a {type(trainable).__name__} without {attribute!r}; "
                "it needs model, train_loss(step) and evaluate()."
            )
    model = trainable.model
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"{origin}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not any(p.requires_grad for p in model.parameters()):
        raise WorkloadError(f"{origin}: model has no parameters that require gradients")
    loss = trainable.train_loss(0)
    if not isinstance(loss, Tensor) or loss.numel() != 1 or loss.grad_fn is None:
        raise WorkloadError(
            f"{origin}: train_loss(0) must return a scalar tensor with a graph for backward(), got {loss!r}"
        )
    loss.backward()
    metrics = trainable.evaluate()
    if not isinstance(metrics, dict):
        raise WorkloadError(f"{origin}: evaluate() must return a dict of metric name -> number, got {metrics!r}")
    metric = workload.target.metric
    if metric not in metrics:
        raise WorkloadError(f"{origin}: evaluate() returned {sorted(metrics)} without the target metric {metric!r}")
    try:
        float(metrics[metric])
    except (TypeError, ValueError):
        raise WorkloadError(f"{origin}: evaluate()[{metric!r}] must be a number, got {metrics[metric]!r}") from None
    return {k: float(v) for k, v in metrics.items()}

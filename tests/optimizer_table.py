"""The one table that drives the generic optimizer suite and the reference tests.

A row per registered optimizer, built from its spec (``SPECS`` in its module: the
configurations to test it in, inputs it must reject, what it supports) and its independent
implementation here (:data:`REFERENCES`). No test keeps a list of optimizer names of its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import references_adaptive as adaptive
import torch
from matrix_references import MuonAdamWReference, MuonLoop, PackageSM3, ShampooLoop, SoapLoop
from reference_optimizers import LambReference, LarsReference, qhoptim
from references import DefinitionRangerLARS, PackageRanger, PaperLookahead

import optarena


@dataclass
class Case:
    name: str
    """Registry name (``optarena.create(name, ...)``)."""
    configs: list[dict[str, Any]]
    """Hyperparameter sets to test; the first is the defaults (``{}``) or the minimum required."""
    config_ids: list[str] = field(default_factory=list)
    """A descriptive id per configuration (test ids read ``adam-amsgrad``)."""
    errors: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """Bad keyword arguments and a fragment the ValueError must contain."""
    reference: Callable[..., torch.optim.Optimizer] | None = None
    """Independent implementation taking (params, **config)."""
    reference_name: str = ""
    complex: bool = True
    """Update is elementwise, so complex parameters work through their real view."""
    descent_lr: float = 1e-2
    """A learning rate at which 50 steps must reduce a small least-squares loss."""
    complex_reference_config: dict[str, Any] | None = None
    """Configuration for the complex-parameter reference test (default: the last config)."""
    fusable: bool = True
    """Runs on the fused (compiled) path, which must equal the eager path."""
    sparse: bool = False
    """Sparse gradients are supported (otherwise they must raise a clear error)."""
    constant_ops: bool = True
    """An eager step issues as many ops for 40 parameters as for 4 (False where the math is per tensor)."""
    scheduled: bool | Callable[[dict[str, Any]], bool] = True
    """Setting ``group["lr"]`` to 0 stops the updates at once (or a function of the config saying so).

    False where lr is only the initial step size (Rprop), or scales the update before a
    momentum that keeps moving (Adafactor with ``beta1``).
    """
    lr_mode: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """The config switched to a mode that takes an ``lr``, where its own mode has none."""
    reference_complex: bool = True
    """The reference treats complex parameters as their real view (as torch.optim does)."""
    reference_state_loads: bool = True
    """A state dict of the reference loads into ours (same state names and meanings), and continues."""
    sync_period: int | None = None
    """Lookahead's default k, for optimizers that pull the fast weights back to slow weights
    every k steps: with lr = 0 the parameters still move, until the next synchronisation."""
    continuous: bool = True
    """The update is a continuous function of the gradients (:attr:`optarena.spec.TestPlan.continuous`)."""

    def create(self, params, **config):
        return optarena.create(self.name, params, **config)

    def stops_at_zero_lr(self, config: dict[str, Any]) -> bool:
        return self.scheduled(config) if callable(self.scheduled) else self.scheduled

    def with_lr(self, config: dict[str, Any], lr: float) -> dict[str, Any]:
        """``config`` with learning rate ``lr`` unless it sets its own."""
        return {"lr": lr, **(self.lr_mode(config) if self.lr_mode else config)}

    @property
    def cls(self) -> type:
        return optarena.registry.lookup(self.name).cls


def _torch(name: str, **fixed):
    cls = getattr(torch.optim, name)

    def build(params, **config):
        return cls(params, **{**fixed, **config})

    return build


class AuthorsAdaBound:
    """The authors' ``adabound.AdaBound``, given torch.optim's ``maximize`` and complex conventions.

    Their optimizer has neither, so it steps real views of the parameters (a complex number
    as two reals, as torch.optim treats them) with the gradients negated under ``maximize``.
    Their code runs unchanged: under torch 2.13 its ``add_(Number, Tensor)`` calls still work
    and only warn that the overload is deprecated, which is silenced here.
    """

    def __init__(self, params, maximize: bool = False, **config):
        import adabound

        self.params = list(params)
        self.views = [torch.view_as_real(p.detach()) if p.is_complex() else p.detach() for p in self.params]
        self.maximize = maximize
        self.inner = adabound.AdaBound(self.views, **config)

    def step(self):
        for p, view in zip(self.params, self.views):
            if p.grad is None:
                view.grad = None
                continue
            grad = torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad
            view.grad = -grad if self.maximize else grad.clone()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="This overload of", category=UserWarning)
            self.inner.step()

    def state_dict(self):
        return self.inner.state_dict()


def _authors_adabound(**fixed):
    def build(params, **config):
        return AuthorsAdaBound(params, **{**fixed, **config})

    return build


REFERENCES: dict[str, tuple[Callable[..., torch.optim.Optimizer] | None, str]] = {
    # registry name: (independent implementation taking (params, **config), its description)
    "sgd": (_torch("SGD"), "torch.optim.SGD"),
    "momentum": (_torch("SGD", momentum=0.9), "torch.optim.SGD(momentum=0.9)"),
    "nesterov": (_torch("SGD", momentum=0.9, nesterov=True), "torch.optim.SGD(momentum=0.9, nesterov=True)"),
    "adagrad": (_torch("Adagrad"), "torch.optim.Adagrad"),
    "adadelta": (_torch("Adadelta"), "torch.optim.Adadelta"),
    "rmsprop": (_torch("RMSprop"), "torch.optim.RMSprop"),
    "adam": (_torch("Adam"), "torch.optim.Adam"),
    "amsgrad": (_torch("Adam", amsgrad=True), "torch.optim.Adam(amsgrad=True)"),
    "adamax": (_torch("Adamax"), "torch.optim.Adamax"),
    "nadam": (_torch("NAdam"), "torch.optim.NAdam"),
    "nadamw": (
        _torch("NAdam", decoupled_weight_decay=True, weight_decay=1e-2),
        "torch.optim.NAdam(decoupled_weight_decay=True, weight_decay=0.01)",
    ),
    "radam": (_torch("RAdam"), "torch.optim.RAdam"),
    "adamw": (_torch("AdamW"), "torch.optim.AdamW"),
    "rprop": (_torch("Rprop"), "torch.optim.Rprop"),
    "lazyadam": (
        _torch("Adam"),
        "torch.optim.Adam (dense gradients); torch.optim.SparseAdam (sparse, tests/test_reference_lazyadam.py)",
    ),
    "adabound": (_authors_adabound(), "adabound.AdaBound (the authors' package)"),
    "amsbound": (_authors_adabound(amsbound=True), "adabound.AdaBound(amsbound=True) (the authors' package)"),
    "adafactor": (
        None,
        "transformers Adafactor (stored fixtures) and torch.optim.Adafactor (tests/test_reference_adafactor.py)",
    ),
    "lamb": (LambReference, "per-tensor loop from the paper (and optax.lamb through stored fixtures)"),
    "lars": (
        LarsReference,
        "per-tensor loop from the paper (and optax.lars through stored fixtures, without weight decay)",
    ),
    "qhm": (qhoptim("QHM"), "qhoptim.pyt.QHM"),
    "qhadam": (qhoptim("QHAdam", betas=(0.995, 0.999), nus=(0.7, 1.0)), "qhoptim.pyt.QHAdam"),
    "qhadamw": (
        qhoptim("QHAdamW", betas=(0.995, 0.999), nus=(0.7, 1.0), weight_decay=1e-2),
        "qhoptim.pyt.QHAdamW",
    ),
    "ranger": (PackageRanger, "pytorch_ranger.Ranger, fed centralised gradients"),
    "rangerlars": (DefinitionRangerLARS, "RangerLARS written from its definition (tests/references.py)"),
    "over9000": (DefinitionRangerLARS, "RangerLARS written from its definition (tests/references.py)"),
    "lookahead": (PaperLookahead, "Algorithm 1 of the paper around torch.optim (tests/references.py)"),
    # the adaptive family of 2023-2024 (tests/references_adaptive.py)
    "schedule_free_adamw": (adaptive.schedule_free("adamw"), "schedulefree.AdamWScheduleFree (in train mode)"),
    "schedule_free_sgd": (adaptive.schedule_free("sgd"), "schedulefree.SGDScheduleFree (in train mode)"),
    "lion": (adaptive.lion(), "lion_pytorch.Lion (and optax.lion through stored fixtures)"),
    "cautious_lion": (adaptive.lion(cautious=True), "lion_pytorch.cautious_lion.Lion(cautious_factor=0)"),
    "cautious_adamw": (
        adaptive.CautiousAdamWDefinition,
        "Cautious AdamW written from its definition (tests/references_adaptive.py)",
    ),
    "prodigy": (adaptive.prodigy, "prodigyopt.Prodigy (one param group)"),
    "dadapt_adam": (adaptive.dadapt_adam, "dadaptation.DAdaptAdam (one param group)"),
    "adopt": (None, "optax.contrib.adopt through stored fixtures (tests/test_reference_optax.py)"),
    "ademamix": (None, "optax.contrib.ademamix through stored fixtures (tests/test_reference_optax.py)"),
    "sophia": (
        adaptive.sophia,
        "sophia_opt.SophiaG (estimates: tests/test_reference_sophia.py; optax.contrib.sophia through stored fixtures)",
    ),
    # matrix-preconditioned optimizers (tests/matrix_references.py)
    "muon": (
        MuonLoop,
        "Muon written from its definition (tests/matrix_references.py); torch.optim.Muon on matrices "
        "(tests/test_reference_matrix.py and the torch.optim conformance suite)",
    ),
    "muon_adamw": (
        MuonAdamWReference,
        "Muon written from its definition on tensors of 2 or more dimensions, torch.optim.AdamW on the rest",
    ),
    "shampoo": (
        ShampooLoop,
        "Algorithm 1 of Gupta et al. per block, with grafting and momentum, written as a loop (tests/matrix_references.py)",
    ),
    "soap": (SoapLoop, "Algorithms 3 and 4 of Vyas et al. written as a loop (tests/matrix_references.py)"),
    "sm3": (
        PackageSM3,
        "the torch-sm3 package (beta = 0, where it and optax agree); optax.sm3 through stored fixtures "
        "(tests/test_reference_matrix.py)",
    ),
    "kfac": (
        _torch("SGD", lr=1e-2, momentum=0.9),
        "torch.optim.SGD (parameters outside Linear and Conv2d layers); the natural gradient with the "
        "explicit Kronecker-factored Fisher (tests/test_kfac.py)",
    ),
}
"""Each optimizer's independent reference; everything else about it is in its spec."""


def case_from_spec(spec: Any) -> Case:
    """The table row of one registered optimizer: its spec's test plan and its reference."""
    plan = spec.tests
    reference, reference_name = REFERENCES.get(spec.name, (None, ""))
    return Case(
        name=spec.name,
        configs=[dict(config.settings) for config in plan.configs],
        config_ids=[config.id for config in plan.configs],
        errors=[(dict(bad), fragment) for bad, fragment in plan.errors],
        reference=reference,
        reference_name=reference_name,
        complex=plan.complex,
        descent_lr=plan.descent_lr,
        complex_reference_config=None if plan.complex_reference_config is None else dict(plan.complex_reference_config),
        fusable=plan.fusable,
        sparse=plan.sparse,
        constant_ops=plan.constant_ops,
        scheduled=plan.scheduled,
        lr_mode=plan.lr_mode,
        reference_complex=plan.reference_complex,
        reference_state_loads=plan.reference_state_loads,
        sync_period=plan.sync_period,
        continuous=plan.continuous,
    )


CASES = [case_from_spec(spec) for spec in optarena.available()]


def case_config_ids():
    """(case, config) pairs with readable test ids (``adam-amsgrad``)."""
    out = []
    for case in CASES:
        for ident, config in zip(case.config_ids, case.configs):
            out.append(((case, config), f"{case.name}-{ident}"))
    return out

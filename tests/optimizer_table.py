"""The one table that drives the generic optimizer suite and the reference tests.

Each row declares an optimizer, the configurations to test it in, inputs it must reject,
what it supports, and the independent implementation it must match. Adding an optimizer
means adding a row here; no test keeps a list of optimizer names of its own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import optarena
from reference_optimizers import LambReference, LarsReference, qhoptim
from references import DefinitionRangerLARS, PackageRanger, PaperLookahead

from matrix_references import MuonLoop, PackageSM3, ShampooLoop, SoapLoop


@dataclass
class Case:
    name: str
    """Registry name (``optarena.create(name, ...)``)."""
    configs: list[dict[str, Any]]
    """Hyperparameter sets to test; the first is the defaults (``{}``) or the minimum required."""
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
    continuous: bool = True
    """The update is a continuous function of the gradients. False for SOAP: the eigenbasis of
    rank-deficient statistics (fewer gradients seen than rows) follows the gradients' last bits, so
    runs whose gradients differ by rounding (a sharded model's summation order) part; its sharded
    runs are compared with one process on identical gradients instead (tests/test_sharded.py)."""
    sync_period: int | None = None
    """Lookahead's default k, for optimizers that pull the fast weights back to slow weights
    every k steps: with lr = 0 the parameters still move, until the next synchronisation."""

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


COMMON_ERRORS = [({"lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr"), ({"nonfinite": "sometimes"}, "nonfinite: 'sometimes'"), ({"foreach": 3}, "foreach: 3")]
BETA_ERRORS = [({"betas": (1.0, 0.999)}, "beta parameter at index 0: 1.0; allowed range: 0 <= betas[0] < 1"), ({"betas": (0.9, -0.1)}, "beta parameter at index 1: -0.1"), ({"eps": -1e-8}, "epsilon value: -1e-08")]

CASES = [
    Case(
        "sgd",
        [
            {"lr": 0.01},
            {"lr": 0.01, "weight_decay": 0.1},
            {"lr": 0.01, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.05},
            {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        ],
        errors=COMMON_ERRORS
        + [({"momentum": -0.5}, "momentum value: -0.5"), ({"weight_decay": -1}, "weight_decay value: -1"), ({"nesterov": True}, "nesterov=True requires momentum > 0")],
        reference=_torch("SGD"),
        reference_name="torch.optim.SGD",
        descent_lr=0.05,
        sparse=True,
    ),
    Case(
        "momentum",
        [{"lr": 0.01}, {"lr": 0.01, "dampening": 0.5}],
        errors=COMMON_ERRORS,
        reference=_torch("SGD", momentum=0.9),
        reference_name="torch.optim.SGD(momentum=0.9)",
        sparse=True,
    ),
    Case(
        "nesterov",
        [{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1}],
        errors=COMMON_ERRORS + [({"dampening": 0.1}, "dampening=0.1")],
        reference=_torch("SGD", momentum=0.9, nesterov=True),
        reference_name="torch.optim.SGD(momentum=0.9, nesterov=True)",
        sparse=True,
    ),
    Case(
        "adagrad",
        [{}, {"lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.3, "eps": 1e-6}],
        errors=COMMON_ERRORS + [({"lr_decay": -1}, "lr_decay value: -1"), ({"initial_accumulator_value": -1}, "initial_accumulator_value value: -1")],
        reference=_torch("Adagrad"),
        reference_name="torch.optim.Adagrad",
        descent_lr=0.1,
        sparse=True,
        # torch starts the imaginary part's sum at 0, optarena at initial_accumulator_value
        complex_reference_config={"lr_decay": 0.05, "weight_decay": 0.1, "eps": 1e-6},
    ),
    Case(
        "adadelta",
        [{}, {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.1}],
        errors=COMMON_ERRORS + [({"rho": 1.5}, "rho value: 1.5; allowed range: 0 <= rho <= 1")],
        reference=_torch("Adadelta"),
        reference_name="torch.optim.Adadelta",
        descent_lr=1.0,
    ),
    Case(
        "rmsprop",
        [{}, {"centered": True}, {"momentum": 0.8, "weight_decay": 0.1}, {"centered": True, "momentum": 0.5, "alpha": 0.9}],
        errors=COMMON_ERRORS + [({"alpha": -0.1}, "alpha value: -0.1"), ({"momentum": -1}, "momentum value: -1")],
        reference=_torch("RMSprop"),
        reference_name="torch.optim.RMSprop",
    ),
    Case(
        "adam",
        [
            {},
            {"amsgrad": True},
            {"weight_decay": 0.1},
            {"weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.8, 0.99)},
            {"amsgrad": True, "weight_decay": 0.05, "eps": 1e-6},
        ],
        errors=COMMON_ERRORS + BETA_ERRORS + [({"betas": (0.9,)}, "betas: (0.9,)")],
        reference=_torch("Adam"),
        reference_name="torch.optim.Adam",
    ),
    Case(
        "amsgrad",
        [{}, {"weight_decay": 0.1}],
        errors=COMMON_ERRORS + BETA_ERRORS,
        reference=_torch("Adam", amsgrad=True),
        reference_name="torch.optim.Adam(amsgrad=True)",
    ),
    Case(
        "adamax",
        [{}, {"weight_decay": 0.1, "betas": (0.8, 0.99)}],
        errors=COMMON_ERRORS + BETA_ERRORS,
        reference=_torch("Adamax"),
        reference_name="torch.optim.Adamax",
    ),
    Case(
        "nadam",
        [{}, {"momentum_decay": 0.01, "weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled_weight_decay": True}],
        errors=COMMON_ERRORS + BETA_ERRORS + [({"momentum_decay": -1}, "momentum_decay value: -1")],
        reference=_torch("NAdam"),
        reference_name="torch.optim.NAdam",
    ),
    Case(
        "radam",
        [{}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.9, 0.99)}],
        errors=COMMON_ERRORS + BETA_ERRORS,
        reference=_torch("RAdam"),
        reference_name="torch.optim.RAdam",
    ),
    Case(
        "adamw",
        [{}, {"amsgrad": True, "weight_decay": 0.1}, {"weight_decay": 0.0}],
        errors=COMMON_ERRORS + BETA_ERRORS + [({"weight_decay": -0.01}, "weight_decay value: -0.01")],
        reference=_torch("AdamW"),
        reference_name="torch.optim.AdamW",
    ),
    Case(
        "rprop",
        [{}, {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2)}, {"lr": 1e-3, "etas": (0.6, 1.1)}],
        errors=COMMON_ERRORS
        + [
            ({"etas": (1.0, 1.2)}, "Invalid eta values: 1.0, 1.2; allowed: 0 < etas[0] < 1; 1 < etas[1]"),
            ({"etas": (0.5, 1.0)}, "Invalid eta values: 0.5, 1.0"),
            ({"step_sizes": (-1.0, 50.0)}, "step_sizes[0] value: -1.0"),
            ({"step_sizes": (1.0, 0.5)}, "step_sizes[0] <= step_sizes[1]"),
        ],
        reference=_torch("Rprop"),
        reference_name="torch.optim.Rprop",
        scheduled=False,
        constant_ops=False,  # two selections (torch.where) per tensor, as torch's own foreach Rprop
    ),
    Case(
        "lazyadam",
        [{}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6}],
        errors=COMMON_ERRORS + BETA_ERRORS,
        reference=_torch("Adam"),
        reference_name="torch.optim.Adam (dense gradients); torch.optim.SparseAdam (sparse, tests/test_reference_lazyadam.py)",
        sparse=True,
    ),
    Case(
        "adabound",
        [
            {},
            {"weight_decay": 0.1, "final_lr": 0.05, "gamma": 0.01},
            {"amsbound": True, "betas": (0.8, 0.99), "eps": 1e-6, "lr": 0.01},
        ],
        errors=COMMON_ERRORS
        + BETA_ERRORS
        + [({"final_lr": -0.1}, "final_lr value: -0.1"), ({"gamma": 0.0}, "gamma value: 0.0; allowed range: 0 < gamma < 1")],
        reference=_authors_adabound(),
        reference_name="adabound.AdaBound (the authors' package)",
    ),
    Case(
        "amsbound",
        [{}, {"weight_decay": 0.1, "final_lr": 0.05, "gamma": 0.01}],
        errors=COMMON_ERRORS + BETA_ERRORS,
        reference=_authors_adabound(amsbound=True),
        reference_name="adabound.AdaBound(amsbound=True) (the authors' package)",
    ),
    Case(
        "adafactor",
        [
            {},
            {"beta1": 0.9, "weight_decay": 0.1},
            {"relative_step": False, "lr": 1e-2, "scale_parameter": False},
            {"warmup_init": True, "clip_threshold": 0.5, "decay_rate": -0.6, "eps": (1e-20, 1e-2)},
        ],
        errors=[
            ({"relative_step": False, "lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr (or None)"),
            ({"lr": 0.01}, "lr=0.01 cannot be combined with relative_step=True"),
            ({"relative_step": False}, "relative_step=False needs an lr"),
            ({"relative_step": False, "lr": 0.01, "warmup_init": True}, "warmup_init=True requires relative_step=True"),
            ({"beta1": 1.0}, "beta1 value: 1.0"),
            ({"clip_threshold": 0.0}, "clip_threshold value: 0.0; allowed range: 0 < clip_threshold"),
            ({"decay_rate": 0.5}, "decay_rate value: 0.5; allowed range: decay_rate <= 0"),
            ({"eps": (1e-30,)}, "eps: (1e-30,)"),
            ({"nonfinite": "sometimes"}, "nonfinite: 'sometimes'"),
        ],
        reference_name="transformers Adafactor (stored fixtures) and torch.optim.Adafactor (tests/test_reference_adafactor.py)",
        complex=False,
        constant_ops=False,
        scheduled=lambda config: config.get("beta1") is None,
        lr_mode=lambda config: {**config, "relative_step": False, "warmup_init": False},
        descent_lr=1.0,  # with scale_parameter, lr multiplies the parameters' RMS (0 at the start here)
    ),
    Case(
        "lamb",
        [
            {},
            {"weight_decay": 0.01},
            {"betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.1},
            {"weight_decay": 0.1, "layer_adaptation": False},
        ],
        errors=COMMON_ERRORS
        + BETA_ERRORS
        + [({"weight_decay": -0.1}, "weight_decay value: -0.1"), ({"layer_adaptation": 1}, "layer_adaptation: 1")],
        reference=LambReference,
        reference_name="per-tensor loop from the paper (and optax.lamb through stored fixtures)",
        complex=False,
        descent_lr=0.1,
    ),
    Case(
        "lars",
        # The least-squares parameters start at zero, where the local rate falls back to 1: a
        # larger lr overshoots on that first step and momentum carries it (see docs/fidelity.md).
        [
            {"lr": 0.03},
            {"lr": 0.03, "weight_decay": 0.01, "trust_coefficient": 0.05},
            {"lr": 2.0, "momentum": 0.8, "nesterov": True, "trust_coefficient": 0.01, "weight_decay": 0.05},
            {"lr": 0.5, "momentum": 0.0, "trust_coefficient": 0.02, "eps": 1e-3},
            {"lr": 0.1, "weight_decay": 0.01, "layer_adaptation": False},
        ],
        errors=COMMON_ERRORS
        + [
            ({"momentum": -0.5}, "momentum value: -0.5"),
            ({"weight_decay": -1}, "weight_decay value: -1"),
            ({"trust_coefficient": 0.0}, "trust_coefficient value: 0.0; allowed range: 0 < trust_coefficient"),
            ({"eps": -1.0}, "epsilon value: -1.0"),
            ({"momentum": 0.0, "nesterov": True}, "nesterov=True requires momentum > 0"),
        ],
        reference=LarsReference,
        reference_name="per-tensor loop from the paper (and optax.lars through stored fixtures, without weight decay)",
        complex=False,
    ),
    Case(
        "qhm",
        [
            {"lr": 0.1, "momentum": 0.9, "nu": 0.7},
            {"lr": 0.1, "momentum": 0.999, "nu": 0.7, "weight_decay": 0.1},
            {"lr": 0.05, "momentum": 0.5, "nu": 1.3},
            {"lr": 0.1, "momentum": 0.9, "nu": 0.0, "weight_decay": 0.01},
        ],
        errors=COMMON_ERRORS
        + [
            ({"momentum": 1.5}, "momentum value: 1.5; allowed range: 0 <= momentum <= 1"),
            ({"nu": float("nan")}, "nu value: nan"),
            ({"weight_decay": -1}, "weight_decay value: -1"),
        ],
        reference=qhoptim("QHM"),
        reference_name="qhoptim.pyt.QHM",
        descent_lr=0.05,
    ),
    Case(
        "qhadam",
        [
            {},
            {"weight_decay": 0.1},
            {"betas": (0.9, 0.99), "nus": (1.0, 1.0), "eps": 1e-6},
            {"nus": (0.5, 0.8), "weight_decay": 0.05},
        ],
        errors=COMMON_ERRORS + BETA_ERRORS + [({"nus": (1.5, 1.0)}, "nus[0] value: 1.5; allowed range: 0 <= nus[0] <= 1")],
        reference=qhoptim("QHAdam", betas=(0.995, 0.999), nus=(0.7, 1.0)),
        reference_name="qhoptim.pyt.QHAdam",
        reference_complex=False,
        reference_state_loads=False,
    ),
    Case(
        "qhadamw",
        [{}, {"weight_decay": 0.1, "nus": (0.8, 0.9), "betas": (0.9, 0.999)}, {"weight_decay": 0.0}],
        errors=COMMON_ERRORS + BETA_ERRORS + [({"nus": (0.7, -0.1)}, "nus[1] value: -0.1")],
        reference=qhoptim("QHAdamW", betas=(0.995, 0.999), nus=(0.7, 1.0), weight_decay=1e-2),
        reference_name="qhoptim.pyt.QHAdamW",
        reference_complex=False,
        reference_state_loads=False,
    ),
    Case(
        "ranger",
        [
            {},
            {"weight_decay": 0.1, "gc_conv_only": True, "k": 3, "alpha": 0.7},
            {"use_gc": False, "sma_threshold": 4, "betas": (0.9, 0.99), "eps": 1e-8},
            {"lr": 0.01, "k": 1, "alpha": 1.0, "weight_decay": 0.05},
        ],
        errors=COMMON_ERRORS
        + BETA_ERRORS
        + [
            ({"k": 0}, "k: 0; allowed: k an integer >= 1"),
            ({"k": 2.5}, "k: 2.5"),
            ({"alpha": 1.5}, "alpha value: 1.5; allowed range: 0 <= alpha <= 1"),
            ({"sma_threshold": 3}, "sma_threshold value: 3; allowed range: 4 <= sma_threshold"),
            ({"use_gc": "yes"}, "use_gc: 'yes'"),
        ],
        reference=PackageRanger,
        reference_name="pytorch_ranger.Ranger, fed centralised gradients",
        reference_state_loads=False,
        complex=False,
        sync_period=6,
        constant_ops=False,  # gradient centralisation: a few ops per distinct shape (tests/test_centralize.py)
    ),
    Case(
        "rangerlars",
        [
            {},
            {"weight_decay": 0.1, "k": 3, "alpha": 0.8, "max_trust_ratio": 2.0},
            {"lr": 0.05, "sma_threshold": 6, "betas": (0.95, 0.99), "eps": 1e-6, "max_trust_ratio": 0.5},
        ],
        errors=COMMON_ERRORS
        + BETA_ERRORS
        + [({"k": 0}, "k: 0"), ({"max_trust_ratio": 0.0}, "max_trust_ratio value: 0.0"), ({"alpha": -0.1}, "alpha value: -0.1")],
        reference=DefinitionRangerLARS,
        reference_name="RangerLARS written from its definition (tests/references.py)",
        reference_state_loads=False,
        complex=False,
        descent_lr=0.5,
        sync_period=6,
    ),
    Case(
        "over9000",
        [{}, {"weight_decay": 0.1, "max_trust_ratio": 1.0}],
        errors=COMMON_ERRORS + [({"max_trust_ratio": -1.0}, "max_trust_ratio value: -1.0")],
        reference=DefinitionRangerLARS,
        reference_name="RangerLARS written from its definition (tests/references.py)",
        reference_state_loads=False,
        complex=False,
        descent_lr=0.5,
        sync_period=6,
    ),
    Case(
        "lookahead",
        [
            {},
            {"inner": "sgd", "lr": 0.05, "momentum": 0.9, "k": 3, "alpha": 0.8},
            {"inner": "adamw", "weight_decay": 0.1, "k": 1, "alpha": 1.0},
            {"inner": "rmsprop", "centered": True, "k": 2, "alpha": 0.3},
        ],
        errors=[
            ({"k": 0}, "k: 0; allowed: k an integer >= 1"),
            ({"alpha": 1.5}, "alpha value: 1.5; allowed range: 0 <= alpha <= 1"),
            ({"inner": "adamm"}, "Did you mean 'adam'"),
            ({"lr": -1.0}, "learning rate: -1.0; allowed range: 0 <= lr"),
        ],
        reference=PaperLookahead,
        reference_name="Algorithm 1 of the paper around torch.optim (tests/references.py)",
        reference_state_loads=False,
        sync_period=5,
    ),
    # -- matrix-preconditioned optimizers ------------------------------------------------------------
    Case(
        "muon",
        [
            {"ns_dtype": "float64"},
            {},
            {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.01, "ns_dtype": "float64"},
            {"adjust_lr_fn": "match_rms_adamw", "ns_steps": 6, "ns_coefficients": (3.4, -4.7, 2.0), "ns_dtype": "float64"},
            {"lr": 0.01, "eps": 1e-5, "adjust_lr_fn": "original", "ns_dtype": "float64"},
        ],
        errors=COMMON_ERRORS
        + [
            ({"momentum": -0.5}, "momentum value: -0.5"),
            ({"adjust_lr_fn": "arbitrary"}, "Adjust learning rate function arbitrary is not supported"),
            ({"ns_steps": 100}, "ns_steps: 100; allowed: ns_steps an integer, 0 <= ns_steps <= 99"),
            ({"ns_dtype": "float16"}, "ns_dtype: 'float16'"),
            ({"ns_coefficients": (1.0, 2.0)}, "ns_coefficients: (1.0, 2.0)"),
        ],
        reference=MuonLoop,
        reference_name="Muon written from its definition (tests/matrix_references.py); torch.optim.Muon "
        "on matrices (tests/test_reference_matrix.py and the torch.optim conformance suite)",
        reference_state_loads=False,
        complex=False,
        constant_ops=False,
        descent_lr=0.05,
        fusable=False,  # compiled kernels with fused=True: tests/test_matrix_transforms.py
    ),
    Case(
        "shampoo",
        [
            {},
            {"precondition_frequency": 1, "grafting": None},
            {"max_preconditioner_dim": 3, "grafting": "adam", "momentum": 0.9, "weight_decay": 0.01},
            {"beta2": 0.9, "matrix_eps": 1e-6, "start_preconditioning_step": 3, "precondition_frequency": 4,
             "grafting": "adagrad", "grafting_eps": 1e-6, "max_preconditioner_dim": 4},
        ],
        errors=COMMON_ERRORS
        + [
            ({"momentum": -0.5}, "momentum value: -0.5"),
            ({"beta2": 0.0}, "beta2 value: 0.0; allowed range: 0 < beta2 <= 1"),
            ({"matrix_eps": 0.0}, "matrix_eps value: 0.0"),
            ({"precondition_frequency": 0}, "precondition_frequency: 0"),
            ({"max_preconditioner_dim": 2.5}, "max_preconditioner_dim: 2.5"),
            ({"start_preconditioning_step": 0}, "start_preconditioning_step: 0"),
            ({"grafting": "sgd"}, "grafting: 'sgd'"),
            ({"matrix_dtype": "float16"}, "matrix_dtype: 'float16'"),
        ],
        reference=ShampooLoop,
        reference_name="Algorithm 1 of Gupta et al. per block, with grafting and momentum, written as a loop "
        "(tests/matrix_references.py)",
        reference_state_loads=False,
        complex=False,
        constant_ops=False,
        descent_lr=0.1,
        fusable=False,
    ),
    Case(
        "soap",
        [
            {"matrix_dtype": "float64"},
            {"precondition_frequency": 1, "precondition_1d": True, "matrix_dtype": "float64", "weight_decay": 0.0},
            {"betas": (0.9, 0.99), "shampoo_beta": 0.8, "eps": 1e-6, "max_preconditioner_dim": 4,
             "precondition_frequency": 3, "correct_bias": False, "matrix_dtype": "float64"},
        ],
        errors=COMMON_ERRORS
        + BETA_ERRORS
        + [
            ({"shampoo_beta": 1.0}, "shampoo_beta value: 1.0"),
            ({"precondition_frequency": 0}, "precondition_frequency: 0"),
            ({"weight_decay": -0.1}, "weight_decay value: -0.1"),
            ({"precondition_1d": 1}, "precondition_1d: 1"),
        ],
        reference=SoapLoop,
        reference_name="Algorithms 3 and 4 of Vyas et al. written as a loop (tests/matrix_references.py)",
        reference_state_loads=False,
        complex=False,
        constant_ops=False,
        fusable=False,
        descent_lr=0.05,
        scheduled=True,
        continuous=False,
    ),
    Case(
        "sm3",
        [{}, {"momentum": 0.9}, {"lr": 0.05, "momentum": 0.5, "eps": 1e-8}],
        errors=COMMON_ERRORS
        + [
            ({"momentum": 1.0}, "momentum value: 1.0; allowed range: 0 <= momentum < 1"),
            ({"beta": -0.1}, "beta value: -0.1"),
            ({"eps": -1.0}, "epsilon value: -1.0"),
        ],
        reference=PackageSM3,
        reference_name="the torch-sm3 package (beta = 0, where it and optax agree); optax.sm3 through stored "
        "fixtures (tests/test_reference_matrix.py)",
        reference_state_loads=False,
        complex=False,
        constant_ops=False,
        fusable=False,
        descent_lr=0.5,
    ),
    Case(
        # given parameters (no model) K-FAC has no layers: this row holds its contract; the layers'
        # natural gradient, intervals and clipping are tests/test_kfac.py's
        "kfac",
        [{}, {"momentum": 0.0, "weight_decay": 0.1}],
        errors=COMMON_ERRORS
        + [
            ({"damping": 0.0}, "damping value: 0.0; allowed range: 0 < damping"),
            ({"factor_decay": 1.0}, "factor_decay value: 1.0"),
            ({"factor_update_interval": 0}, "factor_update_interval: 0"),
            ({"inverse_update_interval": 1.5}, "inverse_update_interval: 1.5"),
            ({"kl_clip": -1.0}, "kl_clip value: -1.0"),
        ],
        reference=_torch("SGD", lr=1e-2, momentum=0.9),
        reference_name="torch.optim.SGD (parameters outside Linear and Conv2d layers); the natural gradient "
        "with the explicit Kronecker-factored Fisher (tests/test_kfac.py)",
        reference_state_loads=False,
        complex=False,
        fusable=False,
        descent_lr=0.05,
    ),
]


def case_config_ids():
    """(case, config) pairs with readable test ids."""
    out = []
    for case in CASES:
        for i, config in enumerate(case.configs):
            out.append(((case, config), f"{case.name}-{i}"))
    return out

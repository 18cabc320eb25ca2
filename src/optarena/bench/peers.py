"""The same algorithm elsewhere: ``torch.optim`` and two popular optimizer libraries.

- ``torch.optim``, with ``foreach=True`` and, where torch has it, ``fused=True``;
- ``torch-optimizer`` (PyPI ``torch-optimizer``, module ``torch_optimizer``);
- ``pytorch-optimizer`` (PyPI ``pytorch_optimizer``, module ``pytorch_optimizer``), with
  ``foreach=True`` where its constructor takes it. Where it re-exports a ``torch.optim``
  class (its ``Adam``, ``AdamW``, ``SGD``, ``RMSprop``, ``NAdam``), it is not timed twice.

Both libraries are in the ``bench`` extra (``pip install -e '.[bench]'``); one that is
missing or fails to import is reported with the reason and left out.

Each peer is configured with optarena's settings translated to its own arguments. Whether
it then computes the same algorithm is measured, not assumed: :func:`deviation` runs it
and optarena side by side for :data:`CHECK_STEPS` steps in float64 on a small problem and
compares the displacements. Only peers within :data:`SAME_TOLERANCE` count as the same
algorithm; the notes say how the others differ.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

LIBRARIES = {
    "torch-optimizer": "torch_optimizer",
    "pytorch-optimizer": "pytorch_optimizer",
    # matrix-preconditioned optimizers
    "heavyball": "heavyball",
}
"""PyPI name -> module name of the two popular libraries."""

CHECK_STEPS = 20
SAME_TOLERANCE = 1e-3
"""Largest relative distance between displacements for two implementations to count as one
algorithm. Implementations that differ only in where ``eps`` enters or in a threshold's
boundary stay well inside; a different update rule lands far outside (LAMB with the bias
correction outside the trust ratio: about 0.8)."""

Builder = Callable[[list[Tensor], dict[str, Any]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Peer:
    """One implementation of an optarena optimizer's algorithm in another library."""

    library: str
    label: str
    build: Builder
    note: str = ""


@dataclass(frozen=True)
class LibraryStatus:
    name: str
    module: str
    version: str | None
    error: str | None

    @property
    def available(self) -> bool:
        return self.error is None


def library_status(name: str) -> LibraryStatus:
    """Whether the library imports with this torch, its version, or exactly why not."""
    module = LIBRARIES[name]
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return LibraryStatus(name, module, None, f"not installed (pip install {name}, or the 'bench' extra)")
    try:
        importlib.import_module(module)
    except Exception as error:  # any import failure is reported as it is
        return LibraryStatus(name, module, version, f"import {module} failed: {type(error).__name__}: {error}")
    return LibraryStatus(name, module, version, None)


# -- torch.optim ---------------------------------------------------------------------------------


def _pick(hp: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: hp[key] for key in keys}


_SGD = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
_ADAM = ("lr", "betas", "eps", "weight_decay", "amsgrad")

TORCH: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]], tuple[str, ...], str]] = {
    # optarena name: (torch.optim class, arguments from optarena's settings, modes, note)
    "sgd": ("SGD", lambda hp: _pick(hp, *_SGD), ("foreach", "fused"), ""),
    "momentum": ("SGD", lambda hp: _pick(hp, *_SGD), ("foreach", "fused"), ""),
    "nesterov": ("SGD", lambda hp: _pick(hp, *_SGD), ("foreach", "fused"), ""),
    "adagrad": (
        "Adagrad",
        lambda hp: _pick(hp, "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"),
        ("foreach", "fused"),
        "",
    ),
    "adadelta": ("Adadelta", lambda hp: _pick(hp, "lr", "rho", "eps", "weight_decay"), ("foreach",), ""),
    "rmsprop": (
        "RMSprop",
        lambda hp: _pick(hp, "lr", "alpha", "eps", "weight_decay", "momentum", "centered"),
        ("foreach",),
        "",
    ),
    "adam": ("Adam", lambda hp: _pick(hp, *_ADAM, "decoupled_weight_decay"), ("foreach", "fused"), ""),
    "amsgrad": ("Adam", lambda hp: _pick(hp, *_ADAM, "decoupled_weight_decay"), ("foreach", "fused"), ""),
    "adamax": ("Adamax", lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay"), ("foreach",), ""),
    "nadam": (
        "NAdam",
        lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"),
        ("foreach",),
        "",
    ),
    "radam": (
        "RAdam",
        lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay", "decoupled_weight_decay"),
        ("foreach",),
        "",
    ),
    "adamw": ("AdamW", lambda hp: _pick(hp, *_ADAM), ("foreach", "fused"), ""),
    "rprop": ("Rprop", lambda hp: _pick(hp, "lr", "etas", "step_sizes"), ("foreach",), ""),
    "lazyadam": (
        "Adam",
        lambda hp: _pick(hp, "lr", "betas", "eps"),
        ("foreach", "fused"),
        "with dense gradients LazyAdam is Adam",
    ),
    "adafactor": (
        "Adafactor",
        lambda hp: {
            "lr": 1e-2 if hp["relative_step"] else hp["lr"],
            "beta2_decay": hp["decay_rate"],
            "d": hp["clip_threshold"],
            "weight_decay": hp["weight_decay"],
            "eps": (None, hp["eps"][1]),
        },
        ("foreach",),
        "torch's lr=1e-2 step min(lr, 1/sqrt(t)) equals the relative step; its eps1 guards differently",
    ),
}


def _torch_builder(cls_name: str, arguments: Callable[[dict[str, Any]], dict[str, Any]], mode: str) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        return getattr(torch.optim, cls_name)(params, **arguments(hp), **{mode: True})

    return build


# -- matrix-preconditioned optimizers ---------------------------------------------------------------


class MatrixViews:
    """An optimizer that takes matrices only (``torch.optim.Muon``), stepping every parameter through
    its matrix view, as optarena's matrix optimizers see it: ``shape[0] x rest``, a vector as a row.

    The views share the parameters' memory; each step hands them the gradients' views.
    """

    def __init__(self, make: Callable[[list[Tensor]], torch.optim.Optimizer], params: list[Tensor]):
        from optarena.transforms.matrix import flattened_matrix

        self.params = [p for p in params if p.numel()]
        self.views = [p.detach().view(flattened_matrix(p.shape)) for p in self.params]
        self.inner = make(self.views)

    def step(self) -> None:
        for p, view in zip(self.params, self.views):
            view.grad = None if p.grad is None else p.grad.view(view.shape)
        self.inner.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None


def _torch_muon(hp: dict[str, Any]) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> MatrixViews:
        keys = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn")
        return MatrixViews(lambda views: torch.optim.Muon(views, **_pick(hp, *keys)), params)

    return build


MATRIX_TORCH_PEERS = {
    "muon": Peer("torch.optim", "torch.optim.Muon", _torch_muon({}), "every tensor through its matrix view (torch's Muon takes matrices only)"),
}


def torch_peers(name: str) -> list[Peer]:
    """``torch.optim``'s implementations of the optimizer called ``name`` (none if it has none)."""
    if name in MATRIX_TORCH_PEERS:
        return [MATRIX_TORCH_PEERS[name]]
    if name not in TORCH:
        return []
    cls_name, arguments, modes, note = TORCH[name]
    return [
        Peer("torch.optim", f"torch.optim.{cls_name}({mode})", _torch_builder(cls_name, arguments, mode), note)
        for mode in modes
    ]


# -- torch-optimizer and pytorch-optimizer ------------------------------------------------------


def _with_foreach(cls: type, arguments: dict[str, Any]) -> dict[str, Any]:
    if "foreach" in inspect.signature(cls.__init__).parameters:
        return {**arguments, "foreach": True}
    return arguments


def _library_builder(module: str, cls_name: str, arguments: Callable[[dict[str, Any]], dict[str, Any]]) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        cls = getattr(importlib.import_module(module), cls_name)
        return cls(params, **_with_foreach(cls, arguments(hp)))

    return build


def _lookahead_builder(module: str) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        inner = torch.optim.Adam(params, **_pick(hp, *_ADAM), foreach=True)
        cls = getattr(importlib.import_module(module), "Lookahead")
        return cls(inner, k=hp["k"], alpha=hp["alpha"])

    return build


_ADABOUND = ("lr", "betas", "final_lr", "gamma", "eps", "weight_decay")

LIBRARY_PEERS: dict[str, dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]], str]]] = {
    # library -> optarena name -> (class, arguments from optarena's settings, note)
    "torch-optimizer": {
        "radam": ("RAdam", lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay"), ""),
        "adabound": ("AdaBound", lambda hp: {**_pick(hp, *_ADABOUND), "amsbound": False}, ""),
        "amsbound": ("AdaBound", lambda hp: {**_pick(hp, *_ADABOUND), "amsbound": True}, ""),
        "adafactor": (
            "Adafactor",
            lambda hp: {
                **_pick(hp, "lr", "clip_threshold", "decay_rate", "beta1", "weight_decay"),
                **_pick(hp, "scale_parameter", "relative_step", "warmup_init"),
                "eps2": hp["eps"],
            },
            "",
        ),
        "lamb": (
            "Lamb",
            lambda hp: {**_pick(hp, "lr", "betas", "eps", "weight_decay"), "debias": True, "clamp_value": 1e30},
            "closest settings, debias=True and no norm clamp; its bias correction still scales the step "
            "after the trust ratio",
        ),
        "lars": (
            "LARS",
            lambda hp: _pick(hp, "lr", "momentum", "weight_decay", "nesterov", "trust_coefficient", "eps"),
            "adapts only where weight_decay != 0",
        ),
        "qhm": ("QHM", lambda hp: _pick(hp, "lr", "momentum", "nu", "weight_decay"), ""),
        "qhadam": ("QHAdam", lambda hp: _pick(hp, "lr", "betas", "nus", "weight_decay", "eps"), ""),
        "qhadamw": (
            "QHAdam",
            lambda hp: {**_pick(hp, "lr", "betas", "nus", "weight_decay", "eps"), "decouple_weight_decay": True},
            "",
        ),
        "ranger": (
            "Ranger",
            lambda hp: _pick(hp, "lr", "alpha", "k", "betas", "eps", "weight_decay"),
            "pytorch-ranger's Ranger: no gradient centralisation",
        ),
    },
    "pytorch-optimizer": {
        "adadelta": ("AdaDelta", lambda hp: _pick(hp, "lr", "rho", "eps", "weight_decay"), ""),
        "adamax": ("AdaMax", lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay"), ""),
        "radam": (
            "RAdam",
            lambda hp: {**_pick(hp, "lr", "betas", "eps", "weight_decay"), "degenerated_to_sgd": True},
            "degenerated_to_sgd=True (its default False skips the first steps' updates)",
        ),
        "adabound": ("AdaBound", lambda hp: {**_pick(hp, *_ADABOUND), "ams_bound": False}, ""),
        "amsbound": ("AdaBound", lambda hp: {**_pick(hp, *_ADABOUND), "ams_bound": True}, ""),
        "adafactor": (
            "AdaFactor",
            lambda hp: {
                **_pick(hp, "lr", "clip_threshold", "decay_rate", "weight_decay"),
                **_pick(hp, "scale_parameter", "relative_step", "warmup_init"),
                "betas": (hp["beta1"], 0.999),
                "eps1": hp["eps"][0],
                "eps2": hp["eps"][1],
                "momentum_dtype": torch.float32,
            },
            "",
        ),
        "lamb": (
            "Lamb",
            lambda hp: _pick(hp, "lr", "betas", "eps", "weight_decay"),
            "",
        ),
        "lars": (
            "LARS",
            lambda hp: _pick(hp, "lr", "momentum", "weight_decay", "nesterov", "trust_coefficient"),
            "",
        ),
        "qhm": ("QHM", lambda hp: _pick(hp, "lr", "momentum", "nu", "weight_decay"), ""),
        "qhadam": ("QHAdam", lambda hp: _pick(hp, "lr", "betas", "nus", "weight_decay", "eps"), ""),
        "qhadamw": (
            "QHAdam",
            lambda hp: {**_pick(hp, "lr", "betas", "nus", "weight_decay", "eps"), "weight_decouple": True},
            "",
        ),
        "ranger": (
            "Ranger",
            lambda hp: _pick(hp, "lr", "betas", "alpha", "k", "weight_decay", "use_gc", "gc_conv_only", "eps"),
            "",
        ),
    },
}

LIBRARY_PEERS["pytorch-optimizer"].update(
    {
        # matrix-preconditioned optimizers
        "soap": (
            "SOAP",
            lambda hp: {
                **_pick(hp, "lr", "betas", "shampoo_beta", "eps", "weight_decay", "precondition_frequency"),
                **_pick(hp, "precondition_1d", "correct_bias"),
                "max_precondition_dim": hp["max_preconditioner_dim"],
            },
            "the authors' code: first moment kept in the eigenbasis (not rotated with it), decay after the step",
        ),
        "shampoo": (
            "Shampoo",
            lambda hp: {**_pick(hp, "lr", "momentum", "weight_decay", "matrix_eps"),
                        "preconditioning_compute_steps": hp["precondition_frequency"]},
            "Gupta et al.'s Shampoo on every tensor dimension, without grafting or blocks",
        ),
        "sm3": ("SM3", lambda hp: _pick(hp, "lr", "momentum", "beta", "eps"), "the torch-sm3 package's code"),
    }
)
LIBRARY_PEERS["heavyball"] = {
    "soap": (
        "SOAP",
        lambda hp: {**_pick(hp, "lr", "betas", "eps", "weight_decay", "precondition_frequency"),
                    "shampoo_beta": hp["shampoo_beta"] if hp["shampoo_beta"] is not None else hp["betas"][1],
                    "max_precond_dim": hp["max_preconditioner_dim"], "precondition_1d": hp["precondition_1d"]},
        "heavyball's SOAP (compiled, its own step schedule and defaults)",
    ),
}

TORCH_REEXPORTS = {"adam": "Adam", "amsgrad": "Adam", "adamw": "AdamW", "sgd": "SGD", "momentum": "SGD",
                   "nesterov": "SGD", "rmsprop": "RMSprop", "nadam": "NAdam"}
"""optarena names whose pytorch-optimizer class may be torch.optim's own (then not timed twice)."""


def library_peers(name: str, library: str) -> tuple[list[Peer], str | None]:
    """The library's implementation of ``name``, and a note when it has none of its own."""
    module = LIBRARIES[library]
    if name == "lookahead":
        return [Peer(library, f"{module}.Lookahead(torch.optim.Adam)", _lookahead_builder(module))], None
    spec = LIBRARY_PEERS[library].get(name)
    if spec is None:
        if name in TORCH_REEXPORTS:
            imported = importlib.import_module(module)
            cls = getattr(imported, TORCH_REEXPORTS[name], None)
            if cls is getattr(torch.optim, TORCH_REEXPORTS[name]):
                return [], f"{module}.{TORCH_REEXPORTS[name]} is torch.optim's class"
        return [], None
    cls_name, arguments, note = spec
    return [Peer(library, f"{module}.{cls_name}", _library_builder(module, cls_name, arguments), note)], None


def peers_for(name: str, libraries: dict[str, LibraryStatus]) -> tuple[list[Peer], list[str]]:
    """Every peer implementation of ``name``, and notes about libraries that have none of their own."""
    peers = torch_peers(name)
    notes = []
    for library, status in libraries.items():
        if not status.available:
            continue
        found, note = library_peers(name, library)
        peers += found
        if note:
            notes.append(note)
    return peers, notes


# -- is it the same algorithm? ------------------------------------------------------------------


CHECK_SHAPES = ((6, 4), (5,), (3, 4))


def deviation(
    build_ours: Callable[[list[Tensor]], torch.optim.Optimizer],
    build_peer: Callable[[list[Tensor]], torch.optim.Optimizer],
    steps: int = CHECK_STEPS,
    seed: int = 0,
) -> float:
    """``||d_ours - d_peer|| / ||d_ours||`` with ``d`` every parameter's displacement after
    ``steps`` steps from the same start with the same gradients (float64, small tensors)."""
    generator = torch.Generator().manual_seed(seed)
    start = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in CHECK_SHAPES]
    grads = [[torch.randn(shape, generator=generator, dtype=torch.float64) for shape in CHECK_SHAPES]
             for _ in range(steps)]

    def run(build: Callable[[list[Tensor]], torch.optim.Optimizer]) -> Tensor:
        params = [torch.nn.Parameter(value.clone()) for value in start]
        optimizer = build(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            optimizer.step()
        return torch.cat([(p.detach() - s).flatten() for p, s in zip(params, start)])

    ours = run(build_ours)
    theirs = run(build_peer)
    scale = ours.norm()
    if scale == 0:
        return float((theirs - ours).norm())
    return float((theirs - ours).norm() / scale)

"""The same algorithm elsewhere: ``torch.optim`` and two popular optimizer libraries.

Which classes, and how optarena's settings translate to their arguments, is each optimizer's
spec (``peers=`` in its module's ``SPECS``, :mod:`optarena.spec`); this module builds and checks
them.

- ``torch.optim``, with ``foreach=True`` and, where torch has it, ``fused=True`` (its Muon,
  which has neither, as it is, each tensor through its matrix view);
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

from optarena.spec import LibraryPeer, TorchPeer

LIBRARIES = {
    "torch-optimizer": "torch_optimizer",
    "pytorch-optimizer": "pytorch_optimizer",
    "heavyball": "heavyball",
}
"""PyPI name -> module name of the popular libraries (heavyball for the matrix-preconditioned
optimizers)."""

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


# -- builders from the specs' peers (optarena.spec) ---------------------------------------------


class MatrixViews:
    """An optimizer that takes matrices only (``torch.optim.Muon``), stepping every parameter
    through its matrix view as optarena's matrix optimizers see it: ``shape[0] x rest``, a
    vector as one row. The views share the parameters' memory; each step hands them the
    gradients' views."""

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


def _torch_builder(peer: TorchPeer, mode: str) -> Builder:
    flags = {} if mode == "default" else {mode: True}

    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        def make(tensors: list[Tensor]) -> torch.optim.Optimizer:
            return getattr(torch.optim, peer.cls)(tensors, **peer.arguments(hp), **flags)

        return MatrixViews(make, params) if peer.matrix_views else make(params)  # type: ignore[return-value]

    return build


def torch_peers(name: str) -> list[Peer]:
    """``torch.optim``'s implementations of the optimizer called ``name`` (none if it has none)."""
    from optarena.registry import lookup

    return [
        Peer(
            "torch.optim",
            f"torch.optim.{peer.cls}" + ("" if mode == "default" else f"({mode})"),
            _torch_builder(peer, mode),
            peer.note,
        )
        for peer in lookup(name).torch_peers()
        for mode in peer.modes
    ]


def _with_foreach(cls: type, arguments: dict[str, Any]) -> dict[str, Any]:
    if "foreach" in inspect.signature(cls.__init__).parameters:
        return {**arguments, "foreach": True}
    return arguments


def _library_builder(module: str, peer: LibraryPeer) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        cls = getattr(importlib.import_module(module), peer.cls)
        optimizer = cls(params, **_with_foreach(cls, peer.arguments(hp)))
        if callable(getattr(optimizer, "train", None)):  # Schedule-Free peers start in eval mode
            optimizer.train()
        return optimizer

    return build


def _lookahead_builder(module: str) -> Builder:
    def build(params: list[Tensor], hp: dict[str, Any]) -> torch.optim.Optimizer:
        adam = ("lr", "betas", "eps", "weight_decay", "amsgrad")
        inner = torch.optim.Adam(params, **{key: hp[key] for key in adam}, foreach=True)
        cls = importlib.import_module(module).Lookahead
        return cls(inner, k=hp["k"], alpha=hp["alpha"])

    return build


def library_peers(name: str, library: str) -> tuple[list[Peer], str | None]:
    """The library's implementation of ``name``, and a note when it has none of its own."""
    from optarena.registry import lookup

    module = LIBRARIES[library]
    spec = lookup(name)
    if spec.kind == "wrapper":
        return [Peer(library, f"{module}.Lookahead(torch.optim.Adam)", _lookahead_builder(module))], None
    peer = spec.library_peer(library)
    if peer is None:
        # where the library re-exports torch.optim's class, it is not timed twice
        for torch_peer in spec.torch_peers():
            cls = getattr(importlib.import_module(module), torch_peer.cls, None)
            if cls is not None and cls is getattr(torch.optim, torch_peer.cls, None):
                return [], f"{module}.{torch_peer.cls} is torch.optim's class"
        return [], None
    return [Peer(library, f"{module}.{peer.cls}", _library_builder(module, peer), peer.note)], None


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
    grads = [
        [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in CHECK_SHAPES] for _ in range(steps)
    ]

    def run(build: Callable[[list[Tensor]], torch.optim.Optimizer]) -> Tensor:
        params = [torch.nn.Parameter(value.clone()) for value in start]
        optimizer = build(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            optimizer.step()
        return torch.cat([(p.detach() - s).flatten() for p, s in zip(params, start)])

    return relative_distance(run(build_ours), run(build_peer))


def relative_distance(reference: Tensor, other: Tensor) -> float:
    """``||other - reference|| / ||reference||`` (the plain distance where ``reference`` is zero)."""
    scale = reference.norm()
    if scale == 0:
        return float((other - reference).norm())
    return float((other - reference).norm() / scale)

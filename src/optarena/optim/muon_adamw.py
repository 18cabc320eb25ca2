"""Muon for a whole model: hidden matrices take Muon, everything else AdamW, as one optimizer."""

from __future__ import annotations

import re
from collections import ChainMap, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from optarena.optim.adamw import AdamW
from optarena.optim.muon import Muon

EMBEDDING_OR_HEAD = re.compile(r"(^|\.)(embed\w*|\w*embeddings?|wte|wpe|lm_head|head|classifier|output_layer)(\.|$)")
"""A dotted name with one of these parts is an embedding or an output head (GPT-2's ``wte``/``wpe``,
``lm_head``, ``tok_embeddings``, ``classifier``, ...)."""

_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


def is_hidden_matrix(name: str, param: Tensor) -> bool:
    """Muon's share of a model: tensors of two or more dimensions (matrices, convolution filters)
    whose name marks no embedding or output head (:data:`EMBEDDING_OR_HEAD`). Biases, gains and
    other vectors, embeddings and heads are AdamW's."""
    return param.dim() >= 2 and not EMBEDDING_OR_HEAD.search(name.lower())


def muon_split(
    named_parameters: Iterable[tuple[str, Tensor]], hidden: Callable[[str, Tensor], bool] = is_hidden_matrix
) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
    """``(muon, adamw)``: the named parameters that require a gradient, split by ``hidden(name, param)``."""
    muon, adamw = [], []
    for item in named_parameters:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], Tensor)):
            raise TypeError(
                f"MuonWithAdamW takes model.named_parameters() ((name, tensor) pairs), got {type(item).__name__}; "
                "the rule that routes parameters reads their names"
            )
        if item[1].requires_grad:
            (muon if hidden(*item) else adamw).append(item)
    return muon, adamw


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on a model's hidden matrices and AdamW on its embeddings, heads, biases and gains.

    ``MuonWithAdamW(model.named_parameters(), muon={"lr": 0.02}, adamw={"lr": 3e-4})`` splits the
    parameters with ``hidden(name, param)`` (default :func:`is_hidden_matrix`: two or more
    dimensions, and a name without an embedding or head part such as ``wte``, ``embed_tokens``
    or ``lm_head``) and builds :class:`optarena.Muon` over the first share and
    :class:`optarena.AdamW` over the second, each with its keyword arguments (``muon``,
    ``adamw``). It is one ``torch.optim.Optimizer``: ``param_groups`` lists Muon's groups and
    then AdamW's (the same dicts, so a learning-rate scheduler drives both, each from its own
    initial rate), ``step`` steps both after one closure call, and ``state_dict`` holds both
    (``{"muon": ..., "adamw": ...}``). The inner optimizers are ``.muon`` and ``.adamw``
    (either None when its share is empty).
    """

    def __init__(
        self,
        named_parameters: Iterable[tuple[str, Tensor]],
        muon: dict[str, Any] | None = None,
        adamw: dict[str, Any] | None = None,
        hidden: Callable[[str, Tensor], bool] = is_hidden_matrix,
    ):
        matrices, others = muon_split(named_parameters, hidden)
        if not matrices and not others:
            raise ValueError("MuonWithAdamW got no parameter that requires a gradient")
        self.muon = Muon(matrices, **(muon or {})) if matrices else None
        self.adamw = AdamW(others, **(adamw or {})) if others else None
        self.defaults = {}
        for name in _HOOK_DICTS:
            setattr(self, name, OrderedDict())
        self._patch_step_function()

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.muon, self.adamw) if o is not None]

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [group for o in self.optimizers for group in o.param_groups]

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        raise AttributeError("MuonWithAdamW's groups belong to .muon and .adamw; change them there")

    @property
    def state(self) -> ChainMap:  # type: ignore[override]
        """Both optimizers' per-parameter state (read it; each optimizer keeps its own)."""
        return ChainMap(*(o.state for o in self.optimizers))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise TypeError("MuonWithAdamW.add_param_group: add the group to .muon or .adamw, which own the groups")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {name: o.state_dict() for name, o in (("muon", self.muon), ("adamw", self.adamw)) if o is not None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        mine = {name for name, o in (("muon", self.muon), ("adamw", self.adamw)) if o is not None}
        if not isinstance(state_dict, dict) or set(state_dict) != mine:
            found = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"MuonWithAdamW: a state dict with the keys {sorted(mine)} is needed, got {found}")
        for name in sorted(mine):  # each checks before it changes anything
            getattr(self, name)._check_loadable(state_dict[name])
        for name in sorted(mine):
            getattr(self, name).load_state_dict(state_dict[name])

    def __repr__(self) -> str:
        return f"MuonWithAdamW(muon={self.muon!r}, adamw={self.adamw!r})"

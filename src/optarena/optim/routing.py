"""Different chains for different parameters of one optimizer, and the usual param groups.

- :func:`partition`: one optimizer whose parameters are routed to chains by a rule on their
  name and tensor (shape, say) or by a param-group key, e.g. Muon's orthogonalised momentum
  for hidden matrices and AdamW for the rest.
- :func:`param_groups`: a model's parameters in two groups, with and without weight decay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from optarena.hyperparameters import Choice, Hyper
from optarena.transforms.base import Transform

Rule = Callable[[str | None, Tensor], str]
"""``rule(name, param) -> label``: the chain that steps a parameter (``name`` is None for
parameters given without names)."""


@dataclass(frozen=True, eq=False)
class Partition:
    """Chains by label, and the rule that picks one for each parameter (see :func:`partition`)."""

    rule: Rule | str
    chains: Mapping[str, tuple[Transform, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_labels", WeakIdKeyDictionary())

    @property
    def transforms(self) -> tuple[Transform, ...]:
        """Every transform of every chain, in order (what the optimizer declares)."""
        return tuple(t for chain in self.chains.values() for t in chain)

    @property
    def group_key(self) -> str | None:
        """The param-group key that names each group's chain, when the rule is one."""
        return self.rule if isinstance(self.rule, str) else None

    def declared(self) -> dict[str, Hyper]:
        """The routing key's declaration (a choice among the labels), when the rule is a key."""
        if self.group_key is None:
            return {}
        labels = tuple(self.chains)
        return {self.group_key: Hyper(labels[0], Choice(labels), "which chain steps this group's parameters")}

    def label(self, name: str | None, param: Tensor, group: Mapping[str, Any]) -> str:
        """The label of the chain that steps ``param``; a ValueError names a label the rule invented."""
        if self.group_key is not None:
            return str(group.get(self.group_key, next(iter(self.chains))))
        labels: WeakIdKeyDictionary = self._labels  # type: ignore[attr-defined]
        label = labels.get(param)  # type: ignore[no-untyped-call]  # torch.utils.weak has no annotations
        if label is None:
            label = self.rule(name, param)  # type: ignore[operator]
            if label not in self.chains:
                shown = f"{name!r}" if name else f"a parameter of shape {tuple(param.shape)}"
                raise ValueError(
                    f"partition: the rule sent {shown} to {label!r}, which is not a chain; "
                    f"chains: {', '.join(map(repr, self.chains))}"
                )
            labels[param] = label
        return str(label)

    def describe(self) -> str:
        rule = self.rule if isinstance(self.rule, str) else getattr(self.rule, "__name__", "rule")
        chains = "; ".join(
            f"{label}: {' -> '.join(t.describe() for t in chain)}" for label, chain in self.chains.items()
        )
        return f"partition({rule}) {{{chains}}}"

    def __getstate__(self) -> dict[str, Any]:
        return {"rule": self.rule, "chains": self.chains}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "rule", state["rule"])
        object.__setattr__(self, "chains", state["chains"])
        object.__setattr__(self, "_labels", WeakIdKeyDictionary())


def partition(rule: Rule | str, chains: Mapping[str, Sequence[Transform]]) -> Partition:
    """One optimizer, several chains: each parameter steps with ``chains[rule(name, param)]``.

    ``rule`` is a function ``(name, param) -> label``, asked once per parameter (names come from
    ``named_parameters()``), or the name of a param-group key whose value is the label (then
    each group says which chain steps it, and the key is validated like any hyperparameter).
    Chains that read one hyperparameter with different meanings must keep them apart
    (``ScaleByAdam().bind(eps="adam_eps")``); shared ones (``weight_decay``) are shared. Example,
    Muon-style orthogonalised momentum for hidden matrices and Adam for the rest::

        rule = lambda name, p: "matrix" if p.dim() == 2 and "embed" not in name else "adam"
        optimizer = Chain(model.named_parameters(), partition(rule, {
            "matrix": [Trace(), ScaleByLearningRate()],
            "adam": [ScaleByAdam(), ScaleByLearningRate().bind(lr="adam_lr")],
        }), lr=0.02, adam_lr=3e-4, momentum=0.95)
    """
    if not isinstance(rule, str) and not callable(rule):
        raise TypeError(f"partition: rule must be a function (name, param) -> label or a param-group key, got {rule!r}")
    if isinstance(rule, str) and not rule.isidentifier():
        raise TypeError(f"partition: a param-group key must be an identifier, got {rule!r}")
    if not isinstance(chains, Mapping) or not chains:
        raise TypeError("partition: chains must be a non-empty mapping of label -> list of transforms")
    checked: dict[str, tuple[Transform, ...]] = {}
    for label, chain in chains.items():
        if not isinstance(label, str) or not label:
            raise TypeError(f"partition: labels must be non-empty strings, got {label!r}")
        chain = tuple(chain)
        if not chain or not all(isinstance(t, Transform) for t in chain):
            raise TypeError(
                f"partition: chain {label!r} must be a non-empty list of optarena transforms, got {chain!r}"
            )
        checked[label] = chain
    return Partition(rule, checked)


NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
"""Modules whose parameters the usual recipe leaves without weight decay: embeddings and
normalisation layers (their gains and biases)."""


def no_decay_by_default(module: nn.Module, name: str, param: Tensor) -> bool:
    """The usual rule: biases and every other tensor of fewer than 2 dimensions, and the
    parameters of embeddings and normalisation layers."""
    return param.dim() < 2 or isinstance(module, NO_DECAY_MODULES)


def param_groups(
    model: nn.Module,
    no_decay: Callable[[nn.Module, str, Tensor], bool] | Iterable[str] | None = None,
    **decay_group: Any,
) -> list[dict[str, Any]]:
    """``model``'s trainable parameters in two named groups: with weight decay, and without.

    ``no_decay`` chooses the parameters without decay: None for the usual rule
    (:func:`no_decay_by_default`: biases, gains and embeddings), a function
    ``(module, name, param) -> bool``, or name fragments (``("bias", "norm")``: a parameter
    whose name contains one). Other keywords go into the first group (``weight_decay=0.1``);
    the second has ``weight_decay=0``. Parameters keep their names, so the optimizer's state
    dict carries ``param_names``::

        optimizer = optarena.AdamW(optarena.param_groups(model), lr=3e-4, weight_decay=0.1)

    A group that would be empty is left out.
    """
    if no_decay is None:
        rule: Callable[[nn.Module, str, Tensor], bool] = no_decay_by_default
    elif callable(no_decay):
        rule = no_decay
    elif isinstance(no_decay, str):
        raise TypeError(f"param_groups: no_decay takes name fragments as a list, e.g. [{no_decay!r}]")
    else:
        fragments = tuple(no_decay)
        if not all(isinstance(f, str) for f in fragments):
            raise TypeError(f"param_groups: no_decay must be a function or name fragments, got {no_decay!r}")

        def rule(module: nn.Module, name: str, param: Tensor) -> bool:
            return any(fragment in name for fragment in fragments)

    decay: list[tuple[str, Tensor]] = []
    plain: list[tuple[str, Tensor]] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for local_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            name = f"{module_name}.{local_name}" if module_name else local_name
            (plain if rule(module, name, param) else decay).append((name, param))
    groups = []
    if decay:
        groups.append({"params": decay, **decay_group})
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups

"""Drop-in conformance with torch.optim, driven by torch's own optimizer test table.

``torch.testing._internal.common_optimizers.optim_db`` (shipped in the torch wheel) lists,
for each torch optimizer, the configurations its suite runs (with ``foreach``, ``fused`` and
``differentiable`` switched on one at a time, as torch's tests do) and the inputs it must
refuse. Every row whose torch class has a same-named optarena optimizer runs here on both
classes, on CPU in float64 with small tensors:

- a configuration: both optimizers step three times from the same parameters and gradients
  (one parameter without a gradient at the second step); parameters, per-parameter state
  and state dicts must agree, a state dict must reload into an equal state dict, and each
  library's state dict must load into the other's optimizer and continue alike. With
  ``differentiable=True`` the step runs on non-leaf parameters and the gradients through the
  steps must agree too.
- an error input: optarena must raise (or warn) with the same type as torch, at the same
  moment (construction or step), and with torch's message.

``fused=True`` runs with compilation switched off (``OPTARENA_COMPILE=0``: the documented
eager fallback); the compiled path's equality with the eager one is ``tests/test_fused.py``'s.
Rows that differ on purpose are in :data:`KNOWN_DIFFERENCES` (strict xfail, so a row that
starts to conform must leave the list); docs/fidelity.md gives each one's reason.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
import torch

import optarena.optim

pytestmark = pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")

common = pytest.importorskip("torch.testing._internal.common_optimizers", reason="needs expecttest")

STEPS = 3
SHAPES = [(3, 2), (2,)]
MATRIX_SHAPES = [(3, 2), (2, 4)]
"""For the torch classes that take matrices only (torch.optim.Muon refuses other parameters)."""
MATRIX_ONLY = {"Muon"}
OPTARENA_GROUP_KEYS = {"nonfinite", "state_dtype", "fused"}
"""optarena's own param-group keys (``fused`` where torch's class has none); torch.optim ignores them."""
OWN_GROUP_KEYS_BY_CLASS = {"Muon": {"maximize", "foreach", "ns_dtype"}}
"""Keys optarena's class has and torch's lacks: torch.optim.Muon has no ``maximize`` or ``foreach``
(it steps one tensor at a time) and iterates in bfloat16 only (``ns_dtype``)."""


@dataclass(frozen=True)
class Row:
    name: str
    desc: str
    kwargs: dict[str, Any]
    torch_cls: type
    ours_cls: type

    @property
    def id(self) -> str:
        return f"{self.name}-{self.desc}"


@dataclass(frozen=True)
class ErrorRow:
    name: str
    desc: str
    params: Any
    kwargs: dict[str, Any]
    on_step: bool
    error_type: type
    error_regex: str
    torch_cls: type
    ours_cls: type

    @property
    def id(self) -> str:
        return f"{self.name}-{self.desc}"


def _shared_infos():
    for info in common.optim_db:
        name = info.optim_cls.__name__
        if name in optarena.optim.__all__:
            yield name, info, getattr(optarena.optim, name)


def configuration_rows() -> list[Row]:
    rows = []
    for name, info, ours in _shared_infos():
        inputs = common._get_optim_inputs_including_global_cliquey_kwargs("cpu", torch.float64, info)
        rows += [Row(name, i.desc, i.kwargs, info.optim_cls, ours) for i in inputs]
    return rows


def error_rows() -> list[ErrorRow]:
    rows = []
    for name, info, ours in _shared_infos():
        for e in info.optim_error_inputs_func("cpu", torch.float64):
            i = e.optimizer_error_input
            on_step = e.error_on == common.OptimizerErrorEnum.STEP_ERROR
            rows.append(
                ErrorRow(name, i.desc, i.params, i.kwargs, on_step, e.error_type, e.error_regex, info.optim_cls, ours)
            )
    return rows


def sparse_rows() -> list[Row]:
    """For optimizers torch marks ``supports_sparse``: its configurations and its sparse-test settings."""
    rows = []
    for name, info, ours in _shared_infos():
        if info.supports_sparse:
            inputs = [(i.desc, i.kwargs) for i in info.optim_inputs_func("cpu")]
            inputs.append(("sparse test settings", info.metadata_for_sparse[0]))
            rows += [Row(name, f"sparse {desc}", kwargs, info.optim_cls, ours) for desc, kwargs in inputs]
    return rows


def fused_rows() -> list[Row]:
    """For optimizers torch can fuse: ``fused=True`` on the meta device (torch refuses at the step)."""
    return [
        Row(name, "fused on meta", {"fused": True}, info.optim_cls, ours)
        for name, info, ours in _shared_infos()
        if "fused" in info.supported_impls
    ]


TORCH_FAILS_ON_SPARSE = {
    "SGD-sparse non-zero weight_decay",
    "SGD-sparse maximize",
    "SGD-sparse weight_decay w/ momentum",
    "SGD-sparse nesterov",
}
"""Rows where torch.optim.SGD fails inside its step (``add(sparse, dense)``: weight decay on a
sparse gradient); optarena takes them, and is compared with torch on the dense gradient."""

ADAFACTOR_API = (
    "optarena's Adafactor has Hugging Face Transformers' constructor (lr=None with relative_step, "
    "decay_rate, clip_threshold, beta1) and state names (exp_avg_sq_row/_col), not torch's "
    "(lr=1e-2, beta2_decay, d; row_var, col_var, variance)"
)
KNOWN_DIFFERENCES: dict[str, str] = {
    "Adafactor-default": ADAFACTOR_API + ": equal parameters, other state names and group keys",
    "Adafactor-nonzero weight_decay": ADAFACTOR_API + ": an lr needs relative_step=False",
    "Adafactor-maximize": ADAFACTOR_API + ": equal parameters, other state names and group keys",
    "Adafactor-non-default beta2_decay": ADAFACTOR_API + ": beta2_decay is decay_rate",
    "Adafactor-non-default clipping threshold d": ADAFACTOR_API + ": d is clip_threshold",
    "Adafactor-all optimizer param groups should be with/without names.": ADAFACTOR_API
    + ": the group's lr=1e-2 is refused first (ValueError too, another message)",
    "Adafactor-epsilon1 should be >= 0": ADAFACTOR_API + ": ValueError too, optarena's message",
    "Adafactor-invalid d": ADAFACTOR_API + ": d is an unknown keyword (TypeError)",
    "Adafactor-invalid beta2_decay": ADAFACTOR_API + ": beta2_decay is an unknown keyword (TypeError)",
    "Adafactor-does not support complex parameters": "refused when the group is added (ValueError), "
    "not at the first step (torch's RuntimeError)",
    "Muon-only support 2D parameters": "optarena's Muon steps tensors of more dimensions as shape[0] x rest "
    "matrices (a convolution's filters), as Jordan et al.'s code, and vectors as 1 x n rows",
    "Muon-Tensor lr": "torch.optim.Muon computes the decay factor 1 - lr * weight_decay in the dtype of a "
    "tensor lr (float32 here: 1.7e-8 off for lr=1e-3, weight_decay=0.1), optarena in the parameter's",
    "Muon-does not support complex parameters": "refused when the group is added (ValueError), "
    "not at the first step (torch's RuntimeError)",
}
"""Row id -> why optarena differs there (each is listed in docs/fidelity.md)."""


def _marked(rows):
    return [
        pytest.param(r, id=r.id, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[r.id]))
        if r.id in KNOWN_DIFFERENCES
        else pytest.param(r, id=r.id)
        for r in rows
    ]


CONFIGURATIONS = configuration_rows()
ERRORS = error_rows()
SPARSE = sparse_rows()
FUSED = fused_rows()


@pytest.fixture(autouse=True)
def eager_fallback(monkeypatch):
    monkeypatch.setenv("OPTARENA_COMPILE", "0")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="optarena: the fused", category=RuntimeWarning)
        yield


# -- helpers ----------------------------------------------------------------------------------


def shapes_for(name: str) -> list[tuple[int, ...]]:
    return MATRIX_SHAPES if name in MATRIX_ONLY else SHAPES


def make_params(differentiable: bool, seed: int = 0, shapes=SHAPES):
    """Leaves, or (differentiable) non-leaf copies of leaves, with the leaves returned too."""
    g = torch.Generator().manual_seed(seed)
    leaves = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    if not differentiable:
        return leaves, leaves
    return leaves, [leaf.clone() for leaf in leaves]


def set_grads(params, step: int) -> None:
    for i, p in enumerate(params):
        if i == 1 and step == 1:
            p.grad = None
        else:
            p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


def clone_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(kwargs)


def same(a: Any, b: Any, where: str, rtol: float = 1e-10) -> None:
    """Deep equality of state-dict-like values; tensors by dtype, shape and value (close)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), f"{where}: {a!r} vs {b!r}"
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device, f"{where}: {a!r} vs {b!r}"
        torch.testing.assert_close(a.detach(), b.detach(), rtol=rtol, atol=rtol * 1e-2, msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"
        for key in a:
            same(a[key], b[key], f"{where}[{key!r}]", rtol)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", rtol)
    elif (
        isinstance(a, (int, float))
        and not isinstance(a, bool)
        and isinstance(b, (int, float))
        and not isinstance(b, bool)
    ):
        assert a == b, f"{where}: {a!r} vs {b!r}"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def without_own_keys(state_dict: dict[str, Any], theirs: dict[str, Any], name: str = "") -> dict[str, Any]:
    """optarena's state dict without the group keys torch's lacks, which must be optarena's own."""
    groups = []
    own = OPTARENA_GROUP_KEYS | OWN_GROUP_KEYS_BY_CLASS.get(name, set())
    for ours, reference in zip(state_dict["param_groups"], theirs["param_groups"]):
        extra = set(ours) - set(reference)
        assert extra <= own, f"param-group keys torch does not have: {sorted(extra)}"
        groups.append({k: v for k, v in ours.items() if k not in extra})
    return {**state_dict, "param_groups": groups}


def run_steps(opt, params, start: int, steps: int) -> None:
    for step in range(start, start + steps):
        set_grads(params, step)
        opt.step()


def build(cls, params, kwargs):
    return cls(params, **clone_kwargs(kwargs))


# -- configurations ---------------------------------------------------------------------------


@pytest.mark.parametrize("row", _marked(CONFIGURATIONS))
def test_configuration_matches_torch(row: Row):
    if row.kwargs.get("differentiable"):
        check_differentiable_row(row)
        return
    _, theirs = make_params(False, shapes=shapes_for(row.name))
    _, ours = make_params(False, shapes=shapes_for(row.name))
    opt_t = build(row.torch_cls, theirs, row.kwargs)
    opt_o = build(row.ours_cls, ours, row.kwargs)
    run_steps(opt_t, theirs, 0, STEPS)
    run_steps(opt_o, ours, 0, STEPS)
    same(ours, theirs, "parameters")
    same(dict(enumerate(opt_o.state[p] for p in ours)), dict(enumerate(opt_t.state[p] for p in theirs)), "state")
    saved_o, saved_t = copy.deepcopy(opt_o.state_dict()), copy.deepcopy(opt_t.state_dict())
    same(without_own_keys(saved_o, saved_t, row.name), saved_t, "state_dict")

    fresh = build(row.ours_cls, [p.detach().clone().requires_grad_() for p in ours], row.kwargs)
    fresh.load_state_dict(copy.deepcopy(saved_o))
    same(fresh.state_dict(), saved_o, "state_dict after a reload")

    # each library's state dict, and torch's with ``step`` as a plain number (torch <= 1.11),
    # continues in the other's optimizer as in its own
    loads = [
        (saved_t, row.ours_cls, theirs, "torch's state dict"),
        (legacy_steps(saved_t), row.ours_cls, theirs, "torch's state dict with int steps"),
        (saved_o, row.torch_cls, ours, "optarena's state dict"),
    ]
    for source, target_cls, params, what in loads:
        mine = [p.detach().clone().requires_grad_() for p in params]
        other = [p.detach().clone().requires_grad_() for p in params]
        opt_a = build(target_cls, mine, row.kwargs)
        opt_a.load_state_dict(copy.deepcopy(source))
        opt_b = build(row.torch_cls if target_cls is row.ours_cls else row.ours_cls, other, row.kwargs)
        opt_b.load_state_dict(copy.deepcopy(source))
        run_steps(opt_a, mine, STEPS, 2)
        run_steps(opt_b, other, STEPS, 2)
        same(mine, other, f"parameters after loading {what} into {target_cls.__module__}.{target_cls.__name__}")


def legacy_steps(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The state dict as torch 1.11 and older saved it: every ``step`` a plain int."""
    old = copy.deepcopy(state_dict)
    for entry in old["state"].values():
        if "step" in entry:
            entry["step"] = int(entry["step"])
    return old


def fixed_gradients() -> list[list[torch.Tensor | None]]:
    """Gradients for each step that do not depend on the parameters (None: no gradient then)."""
    g = torch.Generator().manual_seed(1)
    return [
        [
            None if (i == 1 and step == 1) else torch.randn(s, generator=g, dtype=torch.float64)
            for i, s in enumerate(SHAPES)
        ]
        for step in range(STEPS)
    ]


def final_loss(cls, kwargs, start: list[torch.Tensor], grads, differentiable: bool) -> torch.Tensor:
    """sum(theta^2) after the steps, from parameters ``start`` (copied) with the given gradients."""
    params = [p.clone() for p in start] if differentiable else [p.detach().clone().requires_grad_() for p in start]
    opt = build(cls, params, kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g
        opt.step()
    return sum((p * p).sum() for p in params)


def check_differentiable_row(row: Row) -> None:
    """Values as torch's; gradients through the steps as finite differences of torch's steps.

    The gradient of ``sum(theta^2)`` after the steps, with respect to the starting parameters
    and every gradient fed to the steps, is compared with central differences of the same
    function computed by torch's optimizer (``differentiable=False``, float64). torch's own
    differentiable path is no reference here: in some configurations its backward fails
    (Adamax, SGD with momentum and decay) and its bias corrections are float32.
    """
    g = torch.Generator().manual_seed(0)
    starts = [torch.randn(s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads = fixed_gradients()
    plain = {k: v for k, v in row.kwargs.items() if k != "differentiable"}

    leaves = [p.clone().requires_grad_() for p in starts]
    grad_leaves = [[None if t is None else t.clone().requires_grad_() for t in step] for step in grads]
    ours = final_loss(row.ours_cls, row.kwargs, leaves, grad_leaves, differentiable=True)
    inputs = leaves + [t for step in grad_leaves for t in step if t is not None]
    autograd = torch.autograd.grad(ours, inputs)

    with torch.no_grad():
        theirs = final_loss(row.torch_cls, plain, starts, grads, differentiable=False)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-9, msg="loss after the steps")
    plain_inputs = starts + [t for step in grads for t in step if t is not None]
    h = 1e-5
    for tensor, computed in zip(plain_inputs, autograd):
        numeric = torch.zeros_like(tensor)
        for index in range(tensor.numel()):
            flat = tensor.view(-1)
            keep = flat[index].item()
            values = []
            for delta in (h, -h):
                flat[index] = keep + delta
                with torch.no_grad():
                    values.append(final_loss(row.torch_cls, plain, starts, grads, differentiable=False).item())
            flat[index] = keep
            numeric.view(-1)[index] = (values[0] - values[1]) / (2 * h)
        torch.testing.assert_close(computed, numeric, rtol=1e-5, atol=1e-6, msg="gradient through the steps")


# -- sparse gradients and the meta device ------------------------------------------------------


def embedding_steps(cls, kwargs, steps: int = STEPS, sparse: bool = True):
    """An embedding with sparse gradients (repeated ids: uncoalesced) after ``steps`` steps, or the error."""
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(8, 3, sparse=sparse).double()
    opt = build(cls, embedding.parameters(), kwargs)
    try:
        for step in range(steps):
            opt.zero_grad()
            ids = torch.tensor([1, 4, 4, step % 8])
            (embedding(ids) * (step + 1.0)).sin().sum().backward()
            opt.step()
    except Exception as error:  # the type is compared with torch's
        return error, embedding
    state = {
        k: v.to_dense() if isinstance(v, torch.Tensor) and v.is_sparse else v
        for k, v in opt.state[embedding.weight].items()
    }
    return state, embedding


@pytest.mark.parametrize("row", _marked(SPARSE))
def test_sparse_gradients_as_torch(row: Row):
    theirs, weight_t = embedding_steps(row.torch_cls, row.kwargs)
    ours, weight_o = embedding_steps(row.ours_cls, row.kwargs)
    if row.id in TORCH_FAILS_ON_SPARSE:
        assert isinstance(theirs, Exception), "torch now takes this row: compare with it directly"
        theirs, weight_t = embedding_steps(row.torch_cls, row.kwargs, sparse=False)
    elif isinstance(theirs, Exception):
        assert type(ours) is type(theirs), f"torch raised {theirs!r}, optarena gave {ours!r}"
        return
    assert not isinstance(ours, Exception), f"torch stepped, optarena raised {ours!r}"
    same(weight_o.weight, weight_t.weight, "embedding weight")
    # torch.optim.SGD keeps a sparse momentum buffer that optarena keeps dense; compared densely
    same(ours, theirs, "state")


@pytest.mark.parametrize("row", _marked(FUSED))
def test_fused_on_meta_device_as_torch(row: Row):
    errors = []
    for cls in (row.torch_cls, row.ours_cls):
        p = torch.nn.Parameter(torch.zeros(3, device="meta"))
        p.grad = torch.zeros(3, device="meta")
        opt = cls([p], **row.kwargs)
        with pytest.raises(RuntimeError) as info:
            opt.step()
        errors.append(str(info.value))
    assert errors[1] == errors[0]


# -- error inputs -----------------------------------------------------------------------------


def error_params(row: ErrorRow):
    """The row's parameters, copied for each optimizer (torch.optim writes its defaults into group dicts)."""
    if row.params is None:
        return [torch.nn.Parameter(torch.randn(2, 2, dtype=torch.float64))]
    return copy.deepcopy(row.params)


def provoke(cls, row: ErrorRow) -> None:
    params = error_params(row)
    opt = cls(params, **clone_kwargs(row.kwargs))
    if row.on_step:
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.rand_like(p)
        opt.step()


@pytest.mark.parametrize("row", _marked(ERRORS))
def test_error_input_matches_torch(row: ErrorRow):
    if issubclass(row.error_type, Warning):
        for cls in (row.torch_cls, row.ours_cls):
            with pytest.warns(row.error_type, match=row.error_regex):
                provoke(cls, row)
        return
    with pytest.raises(row.error_type, match=row.error_regex):
        provoke(row.torch_cls, row)
    if row.on_step:
        opt = row.ours_cls(error_params(row), **clone_kwargs(row.kwargs))
        with pytest.raises(row.error_type, match=row.error_regex):
            for p in opt.param_groups[0]["params"]:
                p.grad = torch.rand_like(p)
            opt.step()
    else:
        with pytest.raises(row.error_type, match=row.error_regex):
            provoke(row.ours_cls, row)

"""The composable core: Chain, transforms, the registry and strict input."""

from __future__ import annotations

import io

import pytest
import torch
from optimizer_table import CASES
from torch.utils._python_dispatch import TorchDispatchMode

import optarena
from optarena.transforms import AddDecayedWeights, ScaleByAdam, ScaleByLearningRate, Trace


def grads_for(params, step):
    for i, p in enumerate(params):
        p.grad = torch.cos(p.detach() * 0.9 + step + i)


def fresh(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 2, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


def test_chain_of_transforms_equals_named_optimizer():
    a, b = fresh(), fresh()
    chain = optarena.Chain(a, [ScaleByAdam(), AddDecayedWeights(), ScaleByLearningRate()], lr=0.01, weight_decay=0.1)
    adamw = optarena.AdamW(b, lr=0.01, weight_decay=0.1, fused=False)  # the same chain, not torch's kernel
    for step in range(20):
        grads_for(a, step)
        grads_for(b, step)
        chain.step()
        adamw.step()
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_chain_defaults_come_from_its_transforms():
    chain = optarena.Chain(fresh(), [Trace(), ScaleByLearningRate()], momentum=0.5)
    group = chain.param_groups[0]
    assert group["momentum"] == 0.5 and group["dampening"] == 0.0 and group["lr"] == 1e-3
    assert chain.composition() == "trace -> scale_by_learning_rate"


def test_chain_rejects_unknown_keyword_with_suggestion():
    with pytest.raises(TypeError, match="Did you mean 'momentum'"):
        optarena.Chain(fresh(), [Trace(), ScaleByLearningRate()], momentun=0.5)


def test_chain_rejects_things_that_are_not_transforms():
    with pytest.raises(TypeError, match="Transform"):
        optarena.Chain(fresh(), [torch.optim.SGD])


def test_chain_validates_values_from_transform_declarations():
    with pytest.raises(ValueError, match="beta parameter at index 1: 1.5"):
        optarena.Chain(fresh(), [ScaleByAdam(), ScaleByLearningRate()], betas=(0.9, 1.5))


def test_hyperparameters_are_read_at_every_step():
    a, b = fresh(), fresh()
    opt_a = optarena.Adam(a, lr=0.01)
    opt_b = optarena.Adam(b, lr=0.01)
    for step in range(5):
        grads_for(a, step)
        grads_for(b, step)
        opt_a.step()
        opt_b.step()
    opt_b.param_groups[0]["betas"] = (0.5, 0.9)
    grads_for(a, 5)
    grads_for(b, 5)
    opt_a.step()
    opt_b.step()
    assert not torch.equal(a[0], b[0])


def test_unknown_keyword_on_named_optimizer_keeps_signature():
    import inspect

    with pytest.raises(TypeError, match="Did you mean 'betas'") as info:
        optarena.Adam(fresh(), beta=(0.9, 0.99))
    assert "Valid keyword arguments: lr, betas" in str(info.value)
    assert list(inspect.signature(optarena.Adam).parameters)[:3] == ["params", "lr", "betas"]


def test_create_is_case_insensitive_and_applies_presets():
    opt = optarena.create("NeStErOv", fresh(), lr=0.1)
    assert isinstance(opt, optarena.SGD)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"] is True
    overridden = optarena.create("momentum", fresh(), momentum=0.5)
    assert overridden.param_groups[0]["momentum"] == 0.5


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'adam'") as info:
        optarena.create("adm", fresh())
    assert "nadam" in str(info.value)


def test_available_has_every_table_row_with_description_and_paper():
    entries = {e.name: e for e in optarena.available()}
    for case in CASES:
        entry = entries[case.name]
        assert entry.description and entry.paper is not None and entry.paper.url.startswith("https://")
    assert set(entries) == {c.name for c in CASES}, "every registered optimizer needs a row in the test table"


def test_named_exports_agree_with_registry():
    named = {e.cls for e in optarena.available()}
    exported = {getattr(optarena.optim, n) for n in optarena.optim.__all__}
    assert named <= exported
    for cls in named:
        assert cls.__name__ in optarena.__all__


def test_scalar_state_keeps_its_dtype_through_a_reload():
    params = [torch.randn(3, dtype=torch.float64, requires_grad=True)]
    opt = optarena.NAdam(params)
    grads_for(params, 0)
    opt.step()
    saved_dtype = opt.state[params[0]]["mu_product"].dtype
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twin = optarena.NAdam([params[0].detach().clone()])
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert next(iter(twin.state.values()))["mu_product"].dtype == saved_dtype


class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(case, params):
    opt = case.create(params, **case.configs[-1])
    grads_for(params, 0)
    opt.step()  # state initialisation is per parameter, as in torch.optim
    grads_for(params, 1)
    with OpCounter() as counter:
        opt.step()
    return counter.count


def of_shapes(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_() for shape in shapes]


CONSTANT_OPS = [c for c in CASES if c.constant_ops]


@pytest.mark.parametrize("case", CONSTANT_OPS, ids=[c.name for c in CONSTANT_OPS])
def test_eager_step_issues_multi_tensor_ops_not_a_loop_per_parameter(case):
    """The number of dispatched ops in a step does not grow with the number of parameters."""
    assert ops_per_step(case, fresh(4)) == ops_per_step(case, fresh(40))


@pytest.mark.parametrize("case", CONSTANT_OPS, ids=[c.name for c in CONSTANT_OPS])
def test_eager_op_count_does_not_grow_with_distinct_shapes_either(case):
    few = [(3, 2), (4,), (2, 2, 2)]
    many = few + [(5 + i, 2) for i in range(8)] + [(6,), (7, 1, 3)]
    assert ops_per_step(case, of_shapes(few * 3)) == ops_per_step(case, of_shapes(many * 3))


def test_group_preparation_runs_once_per_group_and_step_before_the_buckets():
    """``Transform.prepare_group`` sees every bucket of a group (here two dtypes, one tensor per
    bucket with foreach=False) once per step, before any bucket's ``prepare``; a step skipped
    for a non-finite gradient does not call it."""
    from optarena.transforms import ScaleByLearningRate, Transform
    from optarena.transforms.base import Prepared

    calls = []

    class Counting(Transform):
        def prepare_group(self, group, contexts):
            calls.append(("group", sorted(len(ctx.params) for ctx in contexts)))

        def prepare(self, ctx):
            calls.append(("bucket", len(ctx.params)))
            return Prepared()

        def apply(self, ops, updates, k):
            return updates

    params = [
        torch.zeros(3, dtype=torch.float64, requires_grad=True),
        torch.zeros(2, dtype=torch.float32, requires_grad=True),
        torch.zeros(4, dtype=torch.float64, requires_grad=True),
    ]
    opt = optarena.Chain(params, [Counting(), ScaleByLearningRate()], foreach=False, nonfinite="skip", lr=0.1)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert calls == [("group", [1, 1, 1]), ("bucket", 1), ("bucket", 1), ("bucket", 1)]
    calls.clear()
    params[1].grad = torch.full_like(params[1], float("nan"))
    opt.step()
    assert calls == []

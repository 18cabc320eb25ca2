"""Gradient centralisation: the list operations on both backends, and the transform in chains."""

from __future__ import annotations

import pytest
import torch
from references import centralised

import optarena
from optarena.transforms import CentralizeGradients, ScaleByAdam, ScaleByLearningRate
from optarena.transforms.ops import FOREACH, LOOP

BACKENDS = pytest.mark.parametrize("ops", [FOREACH, LOOP], ids=["foreach", "loop"])
SHAPES = [(4, 3), (4, 3), (2, 3, 2, 2), (5,), (), (0, 2), (3, 0), (4, 3), (2, 3, 2, 2), (6, 1)]


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) + 0.5 for shape in SHAPES]


@BACKENDS
@pytest.mark.parametrize("conv_only", [False, True])
def test_centralize_matches_the_definition_and_leaves_its_input_alone(ops, conv_only):
    xs = tensors()
    originals = [x.clone() for x in xs]
    out = ops.centralize(xs, 3 if conv_only else 1)
    for x, before, got in zip(xs, originals, out):
        assert torch.equal(x, before)
        torch.testing.assert_close(got, centralised(before, conv_only), rtol=1e-14, atol=1e-15)
        if x.dim() <= (3 if conv_only else 1):
            assert got is x


@BACKENDS
def test_centralize_in_place_equals_out_of_place(ops):
    xs = tensors()
    expected = ops.centralize([x.clone() for x in xs], 1)
    returned = ops.centralize_(xs, 1)
    assert returned is xs
    for x, e in zip(xs, expected):
        torch.testing.assert_close(x, e, rtol=0, atol=1e-15)


def test_centralised_rows_have_zero_mean():
    x = torch.randn(7, 5, 3, dtype=torch.float64) + 3.0
    (out,) = FOREACH.centralize([x], 1)
    assert out.mean(dim=(1, 2)).abs().max() < 1e-15
    assert (out - x).std(dim=(1, 2)).max() < 1e-15  # each row moved by one constant


def test_backends_agree_with_shapes_grouped():
    a, b = tensors(1), tensors(1)
    for x, y in zip(FOREACH.centralize(a, 1), LOOP.centralize(b, 1)):
        torch.testing.assert_close(x, y, rtol=1e-15, atol=1e-15)


def grads_for(params, step):
    for i, p in enumerate(params):
        p.grad = torch.cos(1.3 * p.detach() + step + i) + 0.2


def test_chain_with_centralisation_is_adam_on_centralised_gradients():
    ours = [p.requires_grad_() for p in tensors(2)[:5]]
    theirs = [p.detach().clone().requires_grad_() for p in ours]
    chain = optarena.Chain(ours, [CentralizeGradients(), ScaleByAdam(), ScaleByLearningRate()], lr=0.01)
    adam = torch.optim.Adam(theirs, lr=0.01)
    for step in range(20):
        grads_for(ours, step)
        grads_for(theirs, step)
        raw = [p.grad.clone() for p in ours]
        for p in theirs:
            p.grad = centralised(p.grad, conv_only=False)
        chain.step()
        adam.step()
        for p, g in zip(ours, raw):
            assert torch.equal(p.grad, g), "the gradients themselves must not be modified"
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_use_gc_false_and_conv_only_per_group():
    ours = [p.requires_grad_() for p in tensors(3)[:4]]
    plain = [p.detach().clone().requires_grad_() for p in ours]
    chain = optarena.Chain(
        [{"params": ours[:2], "use_gc": False}, {"params": ours[2:], "gc_conv_only": True}],
        [CentralizeGradients(), ScaleByAdam(), ScaleByLearningRate()],
        lr=0.01,
    )
    adam = torch.optim.Adam(plain, lr=0.01)
    for step in range(5):
        grads_for(ours, step)
        grads_for(plain, step)
        plain[2].grad = centralised(plain[2].grad, conv_only=True)  # the 4-D tensor, in the conv_only group
        chain.step()
        adam.step()
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_a_chain_with_centralisation_refuses_complex_parameters():
    z = torch.zeros(3, 2, dtype=torch.complex128, requires_grad=True)
    with pytest.raises(ValueError, match="does not support complex parameters"):
        optarena.Chain([z], [CentralizeGradients(), ScaleByAdam(), ScaleByLearningRate()])


def test_eager_op_count_grows_with_distinct_shapes_not_with_tensors():
    """Tensors of one shape are centralised together: a few ops per distinct shape."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    def ops(shapes):
        xs = [torch.randn(s, dtype=torch.float64) for s in shapes]
        with Count() as count:
            FOREACH.centralize(xs, 1)
        return count.n

    few = [(3, 2), (4,), (2, 2, 2)]
    many = few + [(5 + i, 2) for i in range(8)]
    assert ops(few * 3) == ops(few * 12)
    assert ops(few * 3) < ops(many * 3)

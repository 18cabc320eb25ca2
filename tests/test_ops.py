"""The two ListOps backends agree: operation by operation, and over whole optimizer steps."""

from __future__ import annotations

import math

import pytest
import torch
from optimizer_table import case_config_ids

from optarena.optim import execution
from optarena.transforms.ops import FOREACH, LOOP


def tensors(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)]


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)


def test_select_by_sign_is_exact_on_both_backends_and_counts_nan_as_zero():
    xs = [
        torch.tensor([-3.5, 0.0, 2e-300, math.nan, -0.0, math.inf, -math.inf], dtype=torch.float64),
        torch.tensor([[7.0, -1e-9], [0.0, 0.25]], dtype=torch.float64),
    ]
    for values in [(0.5, 1.0, 1.2), (0.3, 1.0, 1.7), (0.0, math.inf, math.inf), (-2.0, 0.0, 3.0)]:
        ours = FOREACH.select_by_sign(xs, *values)
        same(ours, LOOP.select_by_sign(xs, *values))
        negative, zero, positive = values
        assert ours[0].tolist() == [negative, zero, positive, zero, zero, positive, negative]
        assert ours[1].tolist() == [[positive, negative], [zero, positive]]


def test_zero_where_negative_keeps_x_elsewhere_on_both_backends():
    xs = [torch.tensor([1.5, -2.0, math.inf, -math.inf, math.nan, 3.0, -4.0], dtype=torch.float64)]
    ys = [torch.tensor([-1.0, -1e-300, -2.0, 0.0, 1.0, math.nan, math.inf], dtype=torch.float64)]
    ours = FOREACH.zero_where_negative(xs, ys)
    same(ours, LOOP.zero_where_negative(xs, ys))
    expected = [0.0, 0.0, 0.0, -math.inf, math.nan, 3.0, -4.0]
    torch.testing.assert_close(ours[0], torch.tensor(expected, dtype=torch.float64), equal_nan=True)
    assert ours[0] is not xs[0] and xs[0][0] == 1.5  # new tensors; the inputs are kept


def test_clamps_agree():
    a, b = tensors(), tensors()
    same(FOREACH.clamp_(a, -0.5, 0.7), LOOP.clamp_(b, -0.5, 0.7))
    a, b = tensors(1), tensors(1)
    same(FOREACH.clamp_(a, [-0.1, -0.2], None), LOOP.clamp_(b, [-0.1, -0.2], None))
    assert all(x.min() >= -0.2 for x in a)
    xs = tensors(2)
    limits = [torch.full_like(x, 0.3) for x in xs]
    low = [-limit for limit in limits]
    same(FOREACH.clamp(xs, low, limits), LOOP.clamp(xs, low, limits))


def test_means_roots_and_shapes_agree():
    xs = [x.abs() + 0.1 for x in tensors(3)]
    same(FOREACH.rsqrt(xs), LOOP.rsqrt(xs))
    same(FOREACH.div(xs, xs), LOOP.div(xs, xs))
    same(FOREACH.mean(xs, -1), [x.mean(dim=-1) for x in xs])
    same(FOREACH.mean(xs, -1, keepdim=True), LOOP.mean(xs, -1, keepdim=True))
    assert [x.shape for x in FOREACH.unsqueeze(xs, -2)] == [(4, 1, 3), (1, 5)]


def test_column_means_by_blocks_of_rows_equal_the_plain_mean():
    # fewer rows than a block, whole blocks only, whole blocks and a remainder of 1 or more
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(rows, 3, generator=g, dtype=torch.float64) for rows in (2, 31, 32, 64, 65, 100)]
    for dim in (0, -2):
        torch.testing.assert_close(LOOP.mean(xs, dim), [x.mean(dim=dim) for x in xs], rtol=1e-14, atol=0)
    cubes = [torch.randn(40, 3, 2, generator=g, dtype=torch.float64)]
    torch.testing.assert_close(LOOP.mean(cubes, -2), [cubes[0].mean(dim=-2)], rtol=0, atol=0)


def test_materialize_keeps_values_and_shapes():
    xs = [torch.randn(4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64), torch.tensor(2.5).double()]
    for backend in (FOREACH, LOOP):
        same(backend.materialize(xs), xs)
        assert [x.shape for x in backend.materialize(xs)] == [x.shape for x in xs]
    assert LOOP.materialize([]) == []


def test_norms_agree_and_norm_alongside_ignores_the_values_it_is_tied_to():
    xs = tensors(4)
    expected = [torch.linalg.vector_norm(x) for x in xs]
    for backend in (FOREACH, LOOP):
        torch.testing.assert_close(backend.norm(xs), expected, rtol=1e-14, atol=0)
    # NaN and infinity in the tied tensors change nothing: the norm is of xs alone
    tied = [torch.full_like(xs[0], math.nan), torch.full_like(xs[1], math.inf)]
    for backend in (FOREACH, LOOP):
        torch.testing.assert_close(backend.norm_alongside(xs, tied), expected, rtol=1e-14, atol=0)


PAIRS = case_config_ids()


class TensorScalars(execution.Kernel):
    """Scalars as the fused path passes them: one 0-d tensor per tensor of the bucket."""

    def scalar(self, name):
        value = super().scalar(name)
        values = value if isinstance(value, (list, tuple)) else [value] * len(self.params)
        return [torch.tensor(float(v), dtype=torch.float64) for v in values]


@pytest.mark.parametrize("tensor_scalars", [False, True], ids=["float-scalars", "tensor-scalars"])
@pytest.mark.parametrize("case,config", [p for p, _ in PAIRS], ids=[i for _, i in PAIRS])
def test_loop_backend_steps_like_the_foreach_backend(case, config, tensor_scalars, monkeypatch):
    """The fused path traces the same math with LoopOps (and tensor scalars): run it eagerly and compare."""

    def run():
        g = torch.Generator().manual_seed(0)
        params = [
            torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_() for shape in [(4, 3), (5,), (2, 3, 2)]
        ]
        opt = case.create(params, **config)
        for step in range(8):
            for i, p in enumerate(params):
                p.grad = torch.sin(1.3 * p.detach() + step + i)
            opt.step()
        return params

    expected = run()
    monkeypatch.setattr(execution, "FOREACH", LOOP)
    if tensor_scalars:
        monkeypatch.setattr(execution, "Kernel", TensorScalars)
    for ours, theirs in zip(run(), expected):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


def test_loop_ops_factors_left_out_add_no_input_to_a_compiled_graph():
    # a float default argument would reach the graph as an input, multiplied into every element
    graph_inputs = []

    def recording_backend(gm, example_inputs):
        graph_inputs.extend(example_inputs)
        return gm.forward

    ops = LOOP

    def step(xs, ys):
        ops.add_(xs, ys)
        ops.addcmul_(xs, ys, ys)
        ops.addcdiv_(xs, ys, ys)
        return ops.added(ops.addcmul(xs, ys, ys), ys)

    xs, ys = [torch.ones(5), torch.ones(3)], [torch.full((5,), 2.0), torch.full((3,), 2.0)]
    torch._dynamo.reset()
    out = torch.compile(step, backend=recording_backend, fullgraph=True, dynamic=True)(xs, ys)
    torch._dynamo.reset()
    assert all(x.dim() == 1 for x in graph_inputs if isinstance(x, torch.Tensor)), graph_inputs
    assert not any(isinstance(x, float) for x in graph_inputs)
    assert torch.equal(xs[0], torch.full((5,), 8.0)) and torch.equal(out[1], torch.full((3,), 14.0))

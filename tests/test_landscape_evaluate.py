"""Batched (vmap, chunked) loss evaluation against the one-network-at-a-time loop."""

import math

import pytest
import torch
from landscape_models import classification_batch, mlp_with_buffers, one_thread  # noqa: F401  (autouse)
from torch import nn

from optarena.landscape import (
    evaluate_points,
    evaluate_points_loop,
    interpolate,
    loss_at,
    parameters_vector,
    plane_surface,
    random_direction,
    random_plane,
)
from optarena.landscape.evaluate import auto_chunk_size, leading_linear_split
from optarena.landscape.surface import grid_coordinates

LOSS = nn.functional.cross_entropy


def plane_setup(seed: int = 0, grid: int = 9):
    model = mlp_with_buffers(seed)
    generator = torch.Generator().manual_seed(seed)
    directions = torch.stack([random_direction(model, generator=generator, one_dimensional="keep") for _ in range(2)])
    axis = torch.linspace(-1.5, 1.5, grid)
    return model, parameters_vector(model), directions, grid_coordinates(axis, axis)


def test_batched_evaluation_equals_the_per_point_loop_in_float32():
    model, center, directions, coords = plane_setup(grid=11)
    batch = classification_batch()
    batched = evaluate_points(model, LOSS, batch, center, directions, coords, chunk_size=16)
    looped = evaluate_points_loop(model, LOSS, batch, center, directions, coords)
    assert batched.dtype == torch.float32 and batched.shape == (121,)
    assert batched.std() > 0.05 * batched.mean()  # a surface, not a constant
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=0)


def test_the_center_point_is_the_model_itself():
    model, center, directions, _ = plane_setup()
    inputs, targets = batch = classification_batch()
    model.eval()
    expected = LOSS(model(inputs), targets)
    model.train()
    got = evaluate_points(model, LOSS, batch, center, directions, torch.zeros(1, 2))
    torch.testing.assert_close(got[0], expected.detach(), rtol=1e-6, atol=0)
    assert loss_at(model, LOSS, batch, center) == pytest.approx(expected.item(), rel=1e-6)


def test_chunk_size_changes_memory_not_results():
    model, center, directions, coords = plane_setup(grid=5)  # 25 points
    batch = classification_batch()
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    results = {}
    for chunk_size in (1, 7, 25, 1000):
        calls.clear()
        results[chunk_size] = evaluate_points(
            model, LOSS, batch, center, directions, coords, chunk_size=chunk_size, decompose=False
        )
        # One forward per chunk: only chunk_size networks are ever built at once.
        assert len(calls) == math.ceil(25 / chunk_size)
    for chunk_size in (7, 25, 1000):
        torch.testing.assert_close(results[chunk_size], results[1], rtol=1e-6, atol=0)


def test_the_automatic_chunk_follows_the_batch_and_the_model():
    assert auto_chunk_size(samples=128, numel=2_410) == 256
    assert auto_chunk_size(samples=1_438, numel=2_410) == 22  # about 32k sample rows per call
    assert auto_chunk_size(samples=32, numel=11_000_000) == 6  # at most 64M parameter entries per call
    assert auto_chunk_size(samples=10**6, numel=10) == 1
    model, center, directions, coords = plane_setup(grid=5)
    batch = classification_batch(samples=2_000)  # 16 networks per call: 25 points in 2 calls
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    automatic = evaluate_points(model, LOSS, batch, center, directions, coords, decompose=False)
    assert len(calls) == 2
    torch.testing.assert_close(
        automatic,
        evaluate_points(model, LOSS, batch, center, directions, coords, chunk_size=1, decompose=False),
        rtol=1e-6,
        atol=0,
    )


def test_evaluation_leaves_the_model_as_it_was():
    model, center, directions, coords = plane_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    evaluate_points(model, LOSS, classification_batch(), center, directions, coords)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_float64_stays_float64():
    model = mlp_with_buffers().double()
    center = parameters_vector(model)
    directions = torch.stack([random_direction(model, generator=torch.Generator().manual_seed(s)) for s in (1, 2)])
    inputs, targets = classification_batch()
    coords = torch.tensor([[0.5, -0.25], [1.0, 1.0]], dtype=torch.float64)
    batched = evaluate_points(model, LOSS, (inputs.double(), targets), center, directions, coords)
    looped = evaluate_points_loop(model, LOSS, (inputs.double(), targets), center, directions, coords)
    assert batched.dtype == torch.float64
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=0)


def test_plane_surface_rows_are_y_and_columns_are_x():
    model, center, directions, _ = plane_setup()
    batch = classification_batch()
    xs, ys = [-1.0, 0.0, 0.5, 2.0], [-0.5, 0.75, 1.0]
    surface = plane_surface(model, LOSS, batch, center, directions, xs, ys, chunk_size=5)
    assert surface.losses.shape == (3, 4)
    single = evaluate_points(model, LOSS, batch, center, directions, torch.tensor([[xs[2], ys[1]]]))
    assert surface.losses[1, 2] == pytest.approx(single.item(), rel=1e-6)


def test_interpolation_passes_through_both_models():
    start_model, end_model = mlp_with_buffers(0), mlp_with_buffers(1)
    batch = classification_batch()
    start, end = parameters_vector(start_model), parameters_vector(end_model)
    line = interpolate(start_model, LOSS, batch, start, end, steps=5, extend=(0.0, 1.0), chunk_size=2)
    assert line.alphas.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert line.losses[0] == pytest.approx(loss_at(start_model, LOSS, batch, start), rel=1e-6)
    # The end model's own parameters with the start model's buffers: same architecture, one set of buffers.
    assert line.losses[-1] == pytest.approx(loss_at(start_model, LOSS, batch, end), rel=1e-6)


def test_random_plane_is_centred_on_the_model():
    model = mlp_with_buffers()
    batch = classification_batch()
    surface, directions = random_plane(model, LOSS, batch, grid=5, span=0.5, generator=torch.Generator().manual_seed(0))
    assert surface.losses.shape == (5, 5) and directions.shape == (2, parameters_vector(model).numel())
    assert surface.xs.tolist() == [-0.5, -0.25, 0.0, 0.25, 0.5]
    assert surface.losses[2, 2] == pytest.approx(loss_at(model, LOSS, batch, parameters_vector(model)), rel=1e-6)


@pytest.mark.parametrize("grid", [1, 0, -3])
def test_a_grid_needs_two_points_per_axis(grid):
    with pytest.raises(ValueError, match="grid must be a whole number of points per axis from 2 to 1001"):
        random_plane(mlp_with_buffers(), LOSS, classification_batch(), grid=grid)


def test_bad_inputs_say_what_is_wrong():
    model, center, directions, coords = plane_setup()
    batch = classification_batch()
    with pytest.raises(ValueError, match=r"chunk_size must be a whole number >= 1 \(or None for automatic\)"):
        evaluate_points(model, LOSS, batch, center, directions, coords, chunk_size=0)
    with pytest.raises(ValueError, match=r"coords must be \(points, 2\)"):
        evaluate_points(model, LOSS, batch, center, directions, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="center must have .* entries"):
        evaluate_points(model, LOSS, batch, center[:-1], directions, coords)
    with pytest.raises(ValueError, match="batch must be a pair"):
        evaluate_points(model, LOSS, batch[0], center, directions, coords)
    per_sample = lambda outputs, targets: LOSS(outputs, targets, reduction="none")  # noqa: E731
    with pytest.raises(ValueError, match="loss_fn must return a single number"):
        evaluate_points(model, per_sample, batch, center, directions, coords)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_leading_linear_layer_runs_once_per_direction_with_the_same_losses(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
        inputs = torch.randn(40, 6)
    else:
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 4))
        inputs = torch.randn(40, 1, 5, 5)
    batch = (inputs, torch.randint(0, 4, (40,)))
    center = parameters_vector(model)
    directions = torch.randn(2, center.numel())
    coords = grid_coordinates(torch.linspace(-1, 1, 6), torch.linspace(-1, 1, 6))
    first_calls, rest_calls = [], []
    model[0].register_forward_pre_hook(lambda module, args: first_calls.append(1))
    model[1].register_forward_pre_hook(lambda module, args: rest_calls.append(1))
    decomposed = evaluate_points(model, LOSS, batch, center, directions, coords, chunk_size=10)
    assert len(first_calls) == 3  # the centre and the two directions, not 36 points
    assert len(rest_calls) == 4  # the rest of the network: one call per chunk of 10 points
    loop = evaluate_points_loop(model, LOSS, batch, center, directions, coords)
    torch.testing.assert_close(decomposed, loop, rtol=1e-5, atol=0)
    plain = evaluate_points(model, LOSS, batch, center, directions, coords, decompose=False)
    torch.testing.assert_close(decomposed, plain, rtol=1e-5, atol=0)


def test_models_without_a_leading_linear_layer_are_evaluated_whole():
    assert leading_linear_split(nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 2))) is None
    assert leading_linear_split(nn.Linear(4, 2)) is None
    assert leading_linear_split(nn.Sequential(nn.Linear(4, 2), nn.ReLU())) is None  # nothing after it to tune
    first, rest = leading_linear_split(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert isinstance(first, nn.Linear) and len(rest) == 2

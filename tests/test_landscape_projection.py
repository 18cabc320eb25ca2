"""Planes through paths: PCA directions, the end-point plane, and projections onto them."""

import pytest
import torch
from landscape_models import one_thread  # noqa: F401  (autouse)

from optarena.landscape import endpoints_plane, pca_directions, pca_plane, project

DIM = 40


def in_plane_points(count: int = 30, noise: float = 0.0, seed: int = 0):
    """Points origin + a u + b v, with u, v not orthogonal, plus optional noise off the plane."""
    g = torch.Generator().manual_seed(seed)
    origin = torch.randn(DIM, generator=g, dtype=torch.float64)
    u = torch.randn(DIM, generator=g, dtype=torch.float64)
    v = u + 0.5 * torch.randn(DIM, generator=g, dtype=torch.float64)
    coords = torch.randn(count, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0], dtype=torch.float64)
    points = origin + coords @ torch.stack([u, v]) + noise * torch.randn(count, DIM, generator=g, dtype=torch.float64)
    return origin, torch.stack([u, v]), coords, points


def test_projection_recovers_coordinates_of_points_in_the_plane():
    origin, basis, coords, points = in_plane_points()
    got, distance = project(points, origin, basis)  # a non-orthogonal basis
    torch.testing.assert_close(got, coords, rtol=1e-9, atol=1e-9)
    assert distance.max() < 1e-9


def test_projection_reports_the_distance_from_the_plane():
    origin, basis, _, _ = in_plane_points()
    normal = torch.randn(DIM, dtype=torch.float64)
    normal -= basis.T @ torch.linalg.solve(basis @ basis.T, basis @ normal)  # orthogonal to the plane
    point = origin + 2.0 * basis[0] - basis[1] + 3.0 * normal / normal.norm()
    coords, distance = project(point.unsqueeze(0), origin, basis)
    torch.testing.assert_close(coords[0], torch.tensor([2.0, -1.0], dtype=torch.float64))
    assert distance.item() == pytest.approx(3.0)


def test_pca_directions_are_orthonormal_and_explain_a_planar_trajectory():
    _, basis, _, points = in_plane_points(noise=1e-3)
    center = points.mean(dim=0)
    directions, explained = pca_directions(points, center)
    torch.testing.assert_close(directions @ directions.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-12)
    assert explained[0] > explained[1] > 0
    assert explained.sum() > 0.9999
    # They span the plane the points were made in: each true axis projects onto their span in full.
    unit = basis / basis.norm(dim=1, keepdim=True)
    assert torch.allclose((unit @ directions.T).norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-5)
    # And the points project back with only the noise left over.
    _, distance = project(points, center, directions)
    assert distance.max() < 1e-2


def test_pca_explained_shares_are_those_of_the_spread():
    # Points along three orthogonal axes with spreads 3, 2 and 1: shares 9/14, 4/14 (1/14 left out).
    axes = torch.eye(DIM, dtype=torch.float64)[:3] * torch.tensor([[3.0], [2.0], [1.0]], dtype=torch.float64)
    points = torch.cat([axes, -axes])
    directions, explained = pca_directions(points, torch.zeros(DIM, dtype=torch.float64))
    torch.testing.assert_close(explained, torch.tensor([9 / 14, 4 / 14], dtype=torch.float64))
    torch.testing.assert_close(directions.abs(), torch.eye(DIM, dtype=torch.float64)[:2])


def paths_from_one_start(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(DIM, generator=g)
    runs = []
    for _ in range(3):
        steps = torch.randn(10, DIM, generator=g).cumsum(dim=0)
        runs.append(torch.cat([start.unsqueeze(0), start + steps]))
    return start, runs


def test_pca_plane_centred_on_the_start_contains_it():
    start, runs = paths_from_one_start()
    plane = pca_plane(runs)
    assert torch.equal(plane.origin, start)
    coords, distance = project(torch.stack([run[0] for run in runs]), plane.origin, plane.directions)
    assert coords.abs().max() == 0 and distance.max() == 0
    assert 0 < sum(plane.explained) <= 1
    assert plane.labels[0].startswith("PC1")
    # Oriented so that the runs move towards +x and +y on the whole.
    movement = sum(run[-1] - run[0] for run in runs)
    assert (plane.directions @ movement > 0).all()


def test_pca_plane_centred_on_the_mean():
    _, runs = paths_from_one_start()
    plane = pca_plane(runs, center="mean")
    torch.testing.assert_close(plane.origin, torch.cat(runs).mean(dim=0))
    torch.testing.assert_close(plane.directions @ plane.directions.T, torch.eye(2), rtol=0, atol=1e-6)


def test_centring_on_the_start_needs_a_common_start():
    _, runs = paths_from_one_start()
    runs[1] = runs[1] + 1.0
    with pytest.raises(ValueError, match="every trajectory to start from the same point"):
        pca_plane(runs)
    with pytest.raises(ValueError, match="center must be one of 'init', 'mean'"):
        pca_plane(runs, center="final")


def test_endpoints_plane_holds_the_start_and_both_ends():
    start, runs = paths_from_one_start()
    plane = endpoints_plane(start, runs[0][-1], runs[1][-1], ("sgd", "adam"))
    torch.testing.assert_close(plane.directions @ plane.directions.T, torch.eye(2), rtol=0, atol=1e-6)
    coords, distance = project(torch.stack([start, runs[0][-1], runs[1][-1]]), plane.origin, plane.directions)
    assert distance.max() < 1e-4 * (runs[0][-1] - start).norm()
    # The first end lies on the first axis, at its distance from the start.
    assert coords[1, 0].item() == pytest.approx((runs[0][-1] - start).norm().item(), rel=1e-5)
    assert abs(coords[1, 1].item()) < 1e-4
    assert "sgd" in plane.labels[0] and "adam" in plane.labels[1]


def test_degenerate_planes_are_refused():
    start, runs = paths_from_one_start()
    end = runs[0][-1]
    with pytest.raises(ValueError, match="on one line"):
        endpoints_plane(start, end, start + 2 * (end - start), ("sgd", "adam"))
    with pytest.raises(ValueError, match="equals the start point"):
        endpoints_plane(start, start, end, ("sgd", "adam"))
    with pytest.raises(ValueError, match="fewer than 2 directions"):
        pca_directions(torch.stack([start, end, 2 * end - start]), start)

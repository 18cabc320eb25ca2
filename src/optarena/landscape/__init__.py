"""Loss landscapes with optimizer paths.

Directions (filter-normalised random, PCA of trajectories, through end points), the loss on
lines and planes evaluated as batches of networks (``torch.func.vmap`` over
``functional_call``, chunked), and paths recorded while training.
See ``docs/landscape.md``.
"""

from optarena.landscape.directions import normalize_direction, random_direction
from optarena.landscape.evaluate import evaluate_points, evaluate_points_loop, loss_at
from optarena.landscape.flat import ParameterLayout, load_vector, parameters_vector
from optarena.landscape.paths import Trajectory, train_paths
from optarena.landscape.projection import Plane, endpoints_plane, pca_directions, pca_plane, project
from optarena.landscape.surface import Line, Surface, interpolate, plane_surface, random_plane

__all__ = [
    "Line",
    "ParameterLayout",
    "Plane",
    "Surface",
    "Trajectory",
    "endpoints_plane",
    "evaluate_points",
    "evaluate_points_loop",
    "interpolate",
    "load_vector",
    "loss_at",
    "normalize_direction",
    "parameters_vector",
    "pca_directions",
    "pca_plane",
    "plane_surface",
    "project",
    "random_direction",
    "random_plane",
    "train_paths",
]

"""Loss landscapes with optimizer paths.

Directions (filter-normalised random, PCA of trajectories, through end points), the loss on
lines and planes evaluated as batches of networks (``torch.func.vmap`` over
``functional_call``, chunked), paths recorded while training, and pictures.
See ``docs/landscape.md``.
"""

from optarena.landscape.directions import normalize_direction, random_direction
from optarena.landscape.evaluate import evaluate_points, evaluate_points_loop, loss_at
from optarena.landscape.flat import ParameterLayout, load_vector, parameters_vector
from optarena.landscape.path_landscape import PathsLandscape, choose_plane, landscape_of_paths
from optarena.landscape.paths import Trajectory, train_paths
from optarena.landscape.plot import PathOnPlane, landscape_figure, line_figure
from optarena.landscape.projection import Plane, endpoints_plane, pca_directions, pca_plane, project
from optarena.landscape.surface import Line, Surface, interpolate, plane_surface, random_plane

__all__ = [
    "Line",
    "ParameterLayout",
    "PathOnPlane",
    "PathsLandscape",
    "Plane",
    "Surface",
    "Trajectory",
    "choose_plane",
    "endpoints_plane",
    "evaluate_points",
    "evaluate_points_loop",
    "interpolate",
    "landscape_figure",
    "landscape_of_paths",
    "line_figure",
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

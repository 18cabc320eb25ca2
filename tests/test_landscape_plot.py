"""The pictures draw the arrays they are given."""

import numpy as np
import pytest

from optarena.landscape import Line, PathOnPlane, Surface, landscape_figure, line_figure


def bowl(log_offset: float = 0.1) -> Surface:
    xs, ys = np.linspace(-2, 2, 9), np.linspace(-1, 1, 5)
    x, y = np.meshgrid(xs, ys)
    return Surface(xs, ys, x**2 + 3 * y**2 + log_offset)


def path() -> PathOnPlane:
    xy = np.array([[-1.5, 0.8], [-0.5, 0.2], [0.0, 0.0]])
    return PathOnPlane("adam", xy, (xy**2 * [1, 3]).sum(axis=1) + 0.1)


@pytest.mark.parametrize("log", [False, True])
def test_the_contour_panel_draws_the_surface_and_the_path(log):
    surface = bowl()
    figure = landscape_figure(
        surface, [path()], axis_labels=("PC1 (90%)", "PC2 (9%)"), log=log, view="contour", legend=["adam (lr 0.001)"]
    )
    (ax, colorbar_ax) = figure.axes
    filled = ax.collections[0]
    assert filled.levels[0] == pytest.approx(surface.losses.min()) and filled.levels[-1] == pytest.approx(
        surface.losses.max()
    )
    if log:  # geometric spacing: equal ratios between levels
        ratios = np.asarray(filled.levels[1:]) / np.asarray(filled.levels[:-1])
        np.testing.assert_allclose(ratios, ratios[0])
    drawn = [line for line in ax.lines if line.get_label() == "adam (lr 0.001)"]
    assert len(drawn) == 1
    np.testing.assert_array_equal(np.column_stack(drawn[0].get_data()), path().xy)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["adam (lr 0.001)", "start"]
    assert ax.get_xlabel() == "PC1 (90%)"


def test_the_surface_panel_draws_the_path_at_the_plane_loss():
    figure = landscape_figure(bowl(), [path()], view="surface")
    (ax,) = figure.axes
    assert ax.name == "3d"
    x, y, z = ax.lines[0].get_data_3d()
    np.testing.assert_allclose(z, path().losses)


def test_both_panels_side_by_side():
    figure = landscape_figure(bowl(), [path()])
    assert sorted(ax.name for ax in figure.axes) == ["3d", "rectilinear", "rectilinear"]  # contour, colour bar, 3-D


def test_log_needs_positive_losses_and_views_are_checked():
    with pytest.raises(ValueError, match="log=True needs positive losses; the smallest on the grid is -0.5"):
        landscape_figure(bowl(log_offset=-0.5), [], log=True)
    with pytest.raises(ValueError, match="view must be one of 'contour', 'surface', 'both'"):
        landscape_figure(bowl(), [], view="3d")


def test_line_figure_draws_the_line():
    line = Line(np.linspace(-0.5, 1.5, 5), np.array([2.0, 1.0, 0.5, 1.0, 3.0]))
    (ax,) = line_figure(line, log=True).axes
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), line.losses)
    assert ax.get_yscale() == "log"

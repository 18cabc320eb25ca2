"""Paths from many starts, fair tuning, and the pictures drawn from their numbers."""

from __future__ import annotations

import math

import pytest
import torch

from optarena import functions
from optarena.functions import paths as paths_module
from optarena.functions.fair_tuning import Budget, score, tune_all, tune_one
from optarena.functions.paths import run_paths
from optarena.functions.plots import legend_label, trajectory_animation, trajectory_figure
from optarena.registry import lookup

QUICK = Budget(steps=60, trials=5, starts=6)


def test_sgd_paths_are_plain_gradient_descent_from_every_start():
    f = functions.get("rosenbrock")
    starts = torch.tensor([[-1.2, 1.0], [0.5, 0.5], [1.5, 2.0]], dtype=torch.float64)
    paths = run_paths(f, "sgd", starts, 20, {"lr": 1e-3})
    x = starts.clone()
    for t in range(1, 21):
        x = x - 1e-3 * f.grad(x)
        torch.testing.assert_close(paths.points[t], x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(paths.values, f(paths.points))
    assert paths.points.shape == (21, 3, 2) and not bool(paths.diverged.any())


def test_batched_and_per_start_layouts_give_the_same_runs(monkeypatch):
    f = functions.get("beale")
    starts = f.sample_starts(5, torch.Generator().manual_seed(0), dtype=torch.float64)
    batched = run_paths(f, "adam", starts, 40, {"lr": 0.05})
    monkeypatch.setattr(paths_module, "_elementwise", lambda optimizer: False)
    separate = run_paths(f, "adam", starts, 40, {"lr": 0.05})
    torch.testing.assert_close(batched.points, separate.points, rtol=1e-12, atol=1e-12)
    alone = run_paths(f, "adam", starts[3:4], 40, {"lr": 0.05})
    torch.testing.assert_close(batched.points[:, 3], alone.points[:, 0], rtol=1e-12, atol=1e-12)


def test_diverged_runs_are_marked_and_score_worst():
    f = functions.get("rosenbrock")
    starts = torch.tensor([[-1.2, 1.0], [1.0, 1.0]], dtype=torch.float64)
    paths = run_paths(f, "sgd", starts, 50, {"lr": 0.5})
    assert paths.diverged.tolist() == [True, False]  # (1, 1) is the minimum: zero gradient
    assert math.isinf(float(paths.final_gap[0])) and float(paths.final_gap[1]) == 0.0
    assert math.isnan(float(paths.points[-1, 0, 0]))
    assert score(paths, quantile=0.5)[0] == math.log10(1e-12)  # the lower median: the run at the minimum
    assert math.isinf(score(paths, quantile=0.75)[0])


def test_noisy_runs_repeat_with_the_same_seed():
    f = functions.get("quadratic", noise=0.3, seed=0)
    starts = torch.zeros(4, 2, dtype=torch.float64)
    a = run_paths(f, "sgd", starts, 10, {"lr": 0.1}, seed=5)
    b = run_paths(f, "sgd", starts, 10, {"lr": 0.1}, seed=5)
    c = run_paths(f, "sgd", starts, 10, {"lr": 0.1}, seed=6)
    assert torch.equal(a.points, b.points) and not torch.equal(a.points, c.points)
    assert float(a.points[-1].std()) > 0  # the noise moved runs that started at the minimum


def test_run_paths_rejects_bad_input():
    f = functions.get("saddle")
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        run_paths(f, "adamm", torch.zeros(1, 2), 5)
    with pytest.raises(ValueError, match=r"starts must be \[n, 2\]"):
        run_paths(f, "sgd", torch.zeros(2, 2, 2), 5)
    with pytest.raises(ValueError, match="steps must be a whole number"):
        run_paths(f, "sgd", torch.zeros(1, 2), -1)


def test_every_optimizer_gets_the_same_points_of_the_unit_cube():
    f = functions.get("quadratic")
    study = tune_all(f, ["sgd", "adam", "adagrad"], QUICK)
    positions = []
    for result in study.results:
        space = lookup(result.name).search_space["lr"]
        lrs = [trial.hyperparameters["lr"] for trial in result.trials]
        positions.append([math.log(lr / space.low) / math.log(space.high / space.low) for lr in lrs])
        assert all(set(trial.hyperparameters) == {"lr"} for trial in result.trials)
        assert len(result.trials) == QUICK.trials
    for other in positions[1:]:
        assert other == pytest.approx(positions[0], abs=1e-9)


def test_the_winner_is_the_best_trial_and_its_runs_are_held_out():
    f = functions.get("rosenbrock")
    result = tune_one(f, "momentum", QUICK)
    best = min(result.trials, key=lambda t: (t.score, t.speed))
    assert result.hyperparameters == best.hyperparameters and result.score == best.score
    assert result.trials[0].hyperparameters["lr"] != result.trials[1].hyperparameters["lr"]
    tuning_starts = f.sample_starts(QUICK.starts, torch.Generator().manual_seed(QUICK.seed), dtype=torch.float64)
    assert not torch.equal(result.held_out.points[0], tuning_starts)
    assert result.held_out.points.shape == (QUICK.steps + 1, QUICK.starts, 2)
    torch.testing.assert_close(result.from_start.points[0, 0], f.start_tensor(torch.float64))
    assert result.median_gap == float(result.held_out.final_gap.sort().values[(QUICK.starts + 1) // 2 - 1])


def test_tuning_all_declared_keys_varies_them():
    study = tune_all(functions.get("saddle"), ["momentum", "adam"], Budget(steps=30, trials=4, starts=3, tune="all"))
    momentum, adam = (result.trials for result in study.results)
    assert {frozenset(t.hyperparameters) for t in momentum} == {frozenset({"lr", "momentum"})}
    assert len({t.hyperparameters["momentum"] for t in momentum}) == 4
    assert {frozenset(t.hyperparameters) for t in adam} == {frozenset({"lr", "betas"})}
    assert {t.hyperparameters["betas"][1] for t in adam} == {0.999}  # only betas[0] is declared tunable
    assert len({t.hyperparameters["betas"][0] for t in adam}) == 4


def test_tpe_strategy_tunes_with_the_same_budget():
    pytest.importorskip("optuna")
    study = tune_all(functions.get("quadratic"), ["sgd"], Budget(steps=30, trials=6, starts=3, strategy="tpe"))
    result = study.results[0]
    assert len(result.trials) == 6
    assert result.score == min(t.score for t in result.trials)


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"strategy": "grid"}, "unknown search strategy 'grid'"),
        ({"tune": "some"}, "tune must be 'lr' or 'all'"),
        ({"quantile": 1.0}, r"quantile must be in \(0, 1\)"),
        ({"objective": "speed"}, "objective must be one of loss, distance"),
    ],
)
def test_bad_budgets_are_rejected(settings, fragment):
    with pytest.raises(ValueError, match=fragment):
        Budget(**settings)


def test_pictures_are_drawn_from_the_runs(tmp_path):
    f = functions.get("himmelblau")
    study = tune_all(f, ["sgd", "adam"], QUICK)
    out = tmp_path / "paths.png"
    fig = trajectory_figure(study, None)
    contour = fig.axes[0]
    drawn = {line.get_label(): line for line in contour.get_lines()}
    for result in study.results:
        label = legend_label(
            result, max(len(r.name) for r in study.results) + 2, max(len(r.settings()) for r in study.results)
        )
        assert result.settings() in label and f"{result.median_gap:.1e}" in label
        line = drawn[label]
        torch.testing.assert_close(torch.as_tensor(line.get_xdata()), result.from_start.points[:, 0, 0])
        torch.testing.assert_close(torch.as_tensor(line.get_ydata()), result.from_start.points[:, 0, 1])
    assert len(fig.axes) >= 2 and fig.axes[1].name == "3d"
    trajectory_figure(study, out)
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 1000
    gif = tmp_path / "paths.gif"
    frames = trajectory_animation(study, gif, frames=6)
    with Image.open(gif) as animation:
        assert animation.n_frames == frames >= 6 - 1


def test_only_two_dimensional_functions_are_drawn():
    study = tune_all(functions.get("rastrigin", dim=3), ["sgd"], Budget(steps=5, trials=2, starts=2))
    with pytest.raises(ValueError, match="only 2-D functions can be drawn"):
        trajectory_figure(study)

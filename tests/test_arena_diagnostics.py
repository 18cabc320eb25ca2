"""The arena's diagnostics: optimizer signals and sharpness stored per evaluation, read back, reported."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from arena_helpers import contents, race
from torch import nn

from optarena.arena.report import build_report
from optarena.arena.results import load_diagnostics, load_results
from optarena.arena.store import SCHEMA_VERSION, Store
from optarena.arena.trial import TrialFailed, TrialSpec, run_trial
from optarena.arena.trial_diagnostics import (
    SHARPNESS_SAMPLES,
    SPECTRUM_PROBES,
    SPECTRUM_STEPS,
    SharpnessProbe,
    SignalNames,
    kept_positions,
)
from optarena.cli import main

TOY = "toy_workloads:classifier"  # 30 steps, evaluated every 5
EVAL_STEPS = [5, 10, 15, 20, 25, 30]
PARAMETERS = ["0.bias", "0.weight", "2.bias", "2.weight"]
OLD_STORE = Path(__file__).parent / "fixtures" / "store_0_1_0.sqlite"


def _spec(optimizer, **settings):
    return TrialSpec(
        workload=TOY,
        options={},
        data_dir=None,
        workload_key="w",
        optimizer=optimizer,
        hyperparameters={},
        seed=1,
        version="test",
        threads=1,
        **settings,
    )


def _series(result, name):
    return [(step, value) for metric, step, value in result.metrics if metric == name]


@pytest.fixture(scope="module")
def signal_race(tmp_path_factory):
    db = tmp_path_factory.mktemp("signals") / "runs.sqlite"
    race(db, workloads=(TOY,), optimizers=("lamb", "sgd"), trials=1, seeds=1)
    return db


def test_a_race_stores_each_evaluations_signals_by_parameter_name(signal_race):
    with Store(signal_race, readonly=True) as store:
        (workload,) = load_results(store)
        reruns = {s.optimizer: s.reruns[0].key for s in workload.studies}
        stored = load_diagnostics(store, list(reruns.values()))
    lamb = stored[reruns["lamb"]]
    assert list(lamb.signals) == ["trust_ratio"] and list(lamb.signals["trust_ratio"]) == PARAMETERS
    for steps, values in lamb.signals["trust_ratio"].values():
        assert steps.tolist() == EVAL_STEPS and (values > 0).all()
    assert not stored[reruns["sgd"]]  # SGD reports no signal


def test_recorded_signals_are_the_optimizers_own_and_change_no_result():
    with_signals = run_trial(_spec("lamb", signals=True))
    without = run_trial(_spec("lamb"))
    assert [m for m in with_signals.metrics if not m[0].startswith("signal:")] == without.metrics
    # the same trust ratios as LAMB's own record of the last step, under the model's names
    from optarena.arena.trial import load_workload
    from optarena.registry import lookup

    trainable = load_workload(TOY, {}, None).setup(1)
    optimizer = lookup("lamb").build(trainable.model.parameters())
    optimizer.record_signals(1)
    for step in range(30):
        optimizer.zero_grad()
        trainable.train_loss(step).backward()
        optimizer.step()
    names = [name for name, _ in trainable.model.named_parameters()]
    own = optimizer.signals["trust_ratio"]  # labelled by position: param_groups[0]['params'][j]
    assert len(own) == len(names)
    for label, expected in own.items():
        name = names[int(label.rsplit("[", 1)[1].rstrip("]"))]
        assert _series(with_signals, f"signal:trust_ratio:{name}")[-1] == (30, pytest.approx(expected, rel=1e-12))


def test_no_signals_are_stored_when_turned_off(tmp_path):
    db = tmp_path / "off.sqlite"
    race(db, workloads=(TOY,), optimizers=("lamb",), trials=1, seeds=1, signals=False)
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM metrics WHERE name LIKE 'signal:%'").fetchone()[0] == 0


def test_a_model_with_many_tensors_records_a_bounded_spread_of_them():
    assert kept_positions(10, 64) == list(range(10))
    kept = kept_positions(200, 64)
    assert len(kept) == 64 and kept[0] == 0 and kept[-1] == 199 and kept == sorted(set(kept))
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(50)])  # 100 tensors
    names = SignalNames(model, torch.optim.SGD(model.parameters(), lr=0.1), limit=8)
    recorded = list(names.labels.values())
    assert len(recorded) == 8 and recorded[0] == "0.weight" and recorded[-1] == "49.bias"
    rows = names.rows({"trust_ratio": {label: 1.0 for label in names.labels}}, step=3)
    assert [r[0] for r in rows] == [f"signal:trust_ratio:{name}" for name in recorded]


def test_the_sharpness_option_stores_the_top_eigenvalue_and_the_threshold():
    plain = run_trial(_spec("sgd"))
    measured = run_trial(_spec("sgd", sharpness=True))
    assert [m for m in measured.metrics if not m[0].startswith("diagnostic:")] == plain.metrics
    sharpness = _series(measured, "diagnostic:sharpness")
    assert [step for step, _ in sharpness] == EVAL_STEPS and all(value > 0 for _, value in sharpness)
    lr = _series(measured, "diagnostic:lr")[0][1]
    assert _series(measured, "diagnostic:threshold")[0][1] == pytest.approx(2 / lr)


def test_the_sharpness_is_the_hessians_top_eigenvalue_on_the_fixed_batch():
    torch.manual_seed(0)

    class Run:
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        loss_fn = staticmethod(nn.functional.cross_entropy)
        train_data = (
            torch.randn(SHARPNESS_SAMPLES + 50, 3, dtype=torch.float64),
            torch.randint(0, 2, (SHARPNESS_SAMPLES + 50,)),
        )

    run = Run()
    probe = SharpnessProbe(run, torch.optim.SGD(run.model.parameters(), lr=0.1, momentum=0.9))
    inputs, targets = probe.batch
    assert len(targets) == SHARPNESS_SAMPLES
    params = dict(run.model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()])

    def loss(vector):
        pieces, at = {}, 0
        for name, p in params.items():
            pieces[name] = vector[at : at + p.numel()].view_as(p)
            at += p.numel()
        return run.loss_fn(torch.func.functional_call(run.model, pieces, (inputs,)), targets)

    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))[-1]
    rows = dict((name, value) for name, _, value in probe.rows(7))
    assert rows["diagnostic:sharpness"] == pytest.approx(float(exact), rel=1e-5)
    assert rows["diagnostic:threshold"] == pytest.approx(3.8 / 0.1)  # heavy-ball momentum 0.9


def _toy_run(samples=SHARPNESS_SAMPLES + 50):
    torch.manual_seed(0)

    class Run:
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
        loss_fn = staticmethod(nn.functional.cross_entropy)
        train_data = (torch.randn(samples, 3, dtype=torch.float64), torch.randint(0, 2, (samples,)))

    return Run()


def test_an_adaptive_optimizer_gets_its_preconditioned_sharpness_and_threshold_beside_the_sharpness():
    from hessian_models import explicit_hessian

    from optarena.diagnostics.preconditioned import diagonal_preconditioner

    run = _toy_run()
    optimizer = torch.optim.Adam(run.model.parameters(), lr=0.01, betas=(0.8, 0.999))
    probe = SharpnessProbe(run, optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        run.loss_fn(run.model(probe.batch[0]), probe.batch[1]).backward()
        optimizer.step()
    rows = {name: value for name, _, value in probe.rows(3)}
    scale = diagonal_preconditioner(optimizer, run.model).rsqrt()
    H = explicit_hessian(run.model, run.loss_fn, probe.batch)
    exact = torch.linalg.eigvalsh(scale[:, None] * H * scale[None, :])[-1]
    assert rows["diagnostic:preconditioned_sharpness"] == pytest.approx(float(exact), rel=1e-5)
    assert rows["diagnostic:preconditioned_threshold"] == pytest.approx(3.6 / (0.2 * 0.01))
    assert rows["diagnostic:sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-5)
    assert "diagnostic:threshold" not in rows  # Adam's threshold bounds P^-1 H, not H


def test_optimizers_without_a_diagonal_preconditioner_record_the_sharpness_alone():
    for name in ("sgd", "lamb"):  # P = 1; no rule
        names = {metric for metric, _, _ in run_trial(_spec(name, sharpness=True)).metrics}
        assert "diagnostic:sharpness" in names and not any("preconditioned" in n for n in names)


def test_the_spectrum_is_stored_at_the_first_and_last_evaluation_as_quadrature():
    plain = run_trial(_spec("adam"))
    measured = run_trial(_spec("adam", spectrum=True))
    assert [m for m in measured.metrics if not m[0].startswith("diagnostic:")] == plain.metrics
    rows = [m for m in measured.metrics if m[0].startswith("diagnostic:spectrum_")]
    assert {step for _, step, _ in rows} == {EVAL_STEPS[0], EVAL_STEPS[-1]}
    nodes_per_snapshot = SPECTRUM_PROBES * SPECTRUM_STEPS
    for step in (EVAL_STEPS[0], EVAL_STEPS[-1]):
        nodes = [v for name, s, v in rows if s == step and name.startswith("diagnostic:spectrum_node:")]
        weights = [v for name, s, v in rows if s == step and name.startswith("diagnostic:spectrum_weight:")]
        assert len(nodes) == len(weights) == nodes_per_snapshot
        assert sum(weights) == pytest.approx(1.0, rel=1e-6) and min(weights) >= 0
    # the largest node is the top eigenvalue, which the sharpness measures on the same batch
    both = run_trial(_spec("adam", spectrum=True, sharpness=True))
    top = max(v for name, s, v in both.metrics if s == 30 and name.startswith("diagnostic:spectrum_node:"))
    assert top == pytest.approx(dict((n, v) for n, s, v in both.metrics if s == 30)["diagnostic:sharpness"], rel=1e-3)


@pytest.fixture(scope="module")
def digits_race(tmp_path_factory):
    """A short digits-mlp race (40 steps, evaluated at 20 and 40) with the sharpness and the spectrum."""
    db = tmp_path_factory.mktemp("digits") / "runs.sqlite"
    options = {"steps": 40, "eval_every": 20}
    race(db, ("digits-mlp",), ("sgd", "adam"), trials=1, seeds=1, options=options, sharpness=True, spectrum=True)
    return db


def test_a_digits_race_stores_the_spectra_and_the_preconditioned_sharpness(digits_race):
    with Store(digits_race, readonly=True) as store:
        (workload,) = load_results(store)
        records = {s.optimizer: s.reruns[0] for s in workload.studies}
        reruns = {name: record.key for name, record in records.items()}
        stored = load_diagnostics(store, list(reruns.values()))
    adam, sgd = stored[reruns["adam"]], stored[reruns["sgd"]]
    for diagnostics in (adam, sgd):
        assert sorted(diagnostics.spectra) == [20, 40]
        for nodes, weights in diagnostics.spectra.values():
            assert len(nodes) == len(weights) == SPECTRUM_PROBES * SPECTRUM_STEPS
            assert weights.sum() == pytest.approx(1.0, rel=1e-6)
        assert not any(name.startswith("spectrum") for name in diagnostics.series)
    steps, values = adam.series["preconditioned_sharpness"]
    assert steps.tolist() == [20, 40] and (values > 0).all()
    tuned = records["adam"].hyperparameters
    beta1, lr = tuned["betas"][0], tuned["lr"]
    expected = (2 + 2 * beta1) / ((1 - beta1) * lr)  # Adam's, for its tuned beta1
    assert adam.series["preconditioned_threshold"][1].tolist() == pytest.approx([expected] * 2, rel=1e-9)
    assert "preconditioned_sharpness" not in sgd.series


def test_the_report_draws_the_preconditioned_sharpness_and_the_spectra(digits_race, signal_race):
    with Store(digits_race, readonly=True) as store:
        section = build_report(store).split("<h3>Diagnostics</h3>")[1]
    assert "<figure class='preconditioned'><svg" in section and "<figure class='spectra'><svg" in section
    table = section.split("<table class='preconditioned'>")[1].split("</table>")[0]
    assert "<tr data-optimizer='adam'>" in table and "sgd" not in table  # SGD's P is 1: the sharpness itself
    assert (
        section.index("Sharpness and the edge")
        < section.index("Preconditioned sharpness")
        < section.index("Hessian spectrum")
    )
    # without the switches: no sharpness, no spectrum, no figure
    with sqlite3.connect(signal_race) as connection:
        assert connection.execute("SELECT COUNT(*) FROM metrics WHERE name LIKE 'diagnostic:%'").fetchone()[0] == 0
    with Store(signal_race, readonly=True) as store:
        html = build_report(store)
    assert "class='spectra'" not in html and "class='preconditioned'" not in html


def test_a_workload_may_not_evaluate_a_diagnostics_name(monkeypatch):
    from toy_workloads import classifier

    from optarena.arena import trial

    workload = classifier(steps=5)
    base = workload.setup

    def setup(seed, *, sparse=False):
        run = base(seed)
        evaluate = run.evaluate
        run.evaluate = lambda: {**evaluate(), "signal:mine": 1.0}
        return run

    workload.setup = setup
    monkeypatch.setattr(trial, "load_workload", lambda *args: workload)
    with pytest.raises(TrialFailed, match="'signal:' or 'diagnostic:' are kept"):
        run_trial(_spec("sgd"))


def test_an_old_store_opens_reports_and_takes_new_trials_unchanged(tmp_path):
    db = tmp_path / "old.sqlite"
    shutil.copy(OLD_STORE, db)
    before = contents(db)
    with Store(db, readonly=True) as store:
        assert "<h3>Diagnostics</h3>" not in build_report(store)
    race(db, workloads=(TOY,), optimizers=("lamb",), trials=1, seeds=1)
    after = contents(db)
    for table, rows in before.items():
        assert set(rows) <= set(after[table])
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with Store(db, readonly=True) as store:
        html = build_report(store)
    assert html.count("<h3>Diagnostics</h3>") == 1 and "data-optimizer='lamb' data-signal='trust_ratio'" in html


def test_the_report_draws_a_heat_map_of_trust_ratios_and_nothing_without_signals(signal_race, tmp_path):
    with Store(signal_race, readonly=True) as store:
        html = build_report(store)
    section = html.split("<h3>Diagnostics</h3>")[1].split("</section>")[0]
    assert "<figure class='heat-map' data-optimizer='lamb' data-signal='trust_ratio'><svg" in section
    assert "0.weight" in section and "Sharpness" not in section  # no sharpness was measured

    db = tmp_path / "plain.sqlite"
    race(db, workloads=(TOY,), optimizers=("sgd", "adam"), trials=1, seeds=1)  # signals on; neither has any
    with Store(db, readonly=True) as store:
        assert "Diagnostics" not in build_report(store)


def test_the_report_draws_the_sharpness_against_its_threshold(tmp_path):
    db = tmp_path / "sharp.sqlite"
    race(db, workloads=(TOY,), optimizers=("sgd",), trials=1, seeds=1, sharpness=True)
    with Store(db, readonly=True) as store:
        html = build_report(store)
    section = html.split("<h3>Diagnostics</h3>")[1]
    assert "Sharpness and the edge of stability" in section and "stability threshold (dashed)" in section


def test_hostile_parameter_names_are_drawn_as_text():
    from optarena.arena import diagnostic_plots

    name = "<script>alert(1)</script> $x^$"
    svg = diagnostic_plots.heat_map_figure(
        f"{name}: trust ratio", [name, "b"], torch.arange(1.0, 4.0).numpy(), torch.rand(2, 3).numpy()
    )
    assert svg.startswith("<svg") and "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_switches_must_be_booleans():
    from optarena.arena.race import RaceConfig, make_plan

    with pytest.raises(ValueError, match="sharpness must be True or False, got 'no'"):
        make_plan(RaceConfig((TOY,), ("sgd",), sharpness="no"))


def test_the_race_command_takes_the_switches_and_refuses_them_for_algoperf(tmp_path, capsys):
    argv = [
        "race",
        "--workload",
        TOY,
        "--optimizers",
        "sgd",
        "--trials",
        "1",
        "--seeds",
        "1",
        "--executor",
        "inline",
        "--db",
        str(tmp_path / "cli.sqlite"),
    ]
    assert main([*argv, "--no-signals", "--sharpness"]) == 0, capsys.readouterr().err
    with sqlite3.connect(tmp_path / "cli.sqlite") as connection:
        assert connection.execute("SELECT COUNT(*) FROM metrics WHERE name = 'diagnostic:sharpness'").fetchone()[0]
    capsys.readouterr()
    assert main([*argv, "--protocol", "algoperf", "--sharpness"]) == 2
    assert "--sharpness, --spectrum and --no-signals are for --protocol tune-rerun" in capsys.readouterr().err
    assert main([*argv, "--protocol", "algoperf", "--spectrum"]) == 2
    assert "--spectrum" in capsys.readouterr().err
    assert (
        main(
            [
                "race",
                "--workload",
                "sparse-bow",
                "--optimizers",
                "sgd",
                "--sharpness",
                "--db",
                str(tmp_path / "x.sqlite"),
            ]
        )
        == 2
    )
    assert "cannot measure sharpness" in capsys.readouterr().err

"""The benchmark's machinery on small parameter sets, eager only (no compilation)."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
import torch

import optarena
from optarena.bench.bandwidth import measure_bandwidth
from optarena.bench.compile_time import CompileTimer
from optarena.bench.memory import peak_extra_bytes
from optarena.bench.params import PRESETS, get_preset, make_param_set
from optarena.bench.peers import SAME_TOLERANCE, deviation, torch_peers
from optarena.bench.report import (
    CSV_FIELDS,
    TABLES,
    method_text,
    read_result,
    render_page,
    table_rows,
    write_outputs,
)
from optarena.bench.runner import BenchConfig, floor_bytes_per_param, hyperparameters, kind_of, run_benchmark
from optarena.bench.timing import Contender, interleaved_rounds
from optarena.bench.traffic import measure_traffic
from optarena.cli import main

SMALL = get_preset("small")


def _stepped(name: str, steps: int = 2, **settings):
    params = make_param_set(SMALL).fresh()
    optimizer = optarena.create(name, params, fused=False, **settings)
    for _ in range(steps):
        optimizer.step()
    return optimizer, params


# -- parameter sets --------------------------------------------------------------------------------


def test_transformer_preset_has_the_specified_layout():
    preset = PRESETS["transformer"]
    assert preset.tensors == 157
    assert preset.shapes[0] == (1536, 512) and preset.shapes[8] == (2048, 512)
    assert preset.shapes.count((8000, 512)) == 1
    blocks = 12 * (1536 * 512 + 1536 + 512 * 512 + 512 + 4 * 512 + 2 * 2048 * 512 + 2048 + 512)
    assert preset.elements == blocks + 8000 * 512 + 2 * 512 + 10 * 512
    assert abs(preset.elements - 41.93e6) < 0.01e6


def test_param_sets_are_reproducible_and_copies_share_the_gradients():
    a, b = make_param_set(SMALL, seed=3), make_param_set(SMALL, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.grads, b.grads))
    first, second = a.fresh(), a.fresh()
    assert first[0] is not second[0] and torch.equal(first[0], second[0])
    assert first[0].grad is second[0].grad
    first[0].data.add_(1.0)
    assert not torch.equal(first[0], second[0])


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="transformer"):
        get_preset("huge")


# -- state and bytes moved ----------------------------------------------------------------------------


def test_adam_keeps_two_moments_and_moves_28_bytes_per_parameter():
    optimizer, params = _stepped("adam")
    traffic = measure_traffic(optimizer, params)
    n = sum(p.numel() for p in params)
    assert traffic.parameters == n == SMALL.elements
    # exp_avg and exp_avg_sq (4 bytes each) plus one float32 step counter per tensor
    assert traffic.state_bytes == 8 * n + 4 * len(params)
    assert traffic.state_bytes_per_param == pytest.approx(8.0, abs=4 * len(params) / n + 1e-12)
    assert traffic.step_bytes == (8 + 4 + 2 * 8) * n


@pytest.mark.parametrize("name, state, moved", [("sgd", 0, 12), ("momentum", 4, 20), ("amsgrad", 12, 36)])
def test_bytes_follow_the_state(name, state, moved):
    optimizer, params = _stepped(name)
    traffic = measure_traffic(optimizer, params)
    assert round(traffic.state_bytes_per_param) == state
    assert traffic.step_bytes_per_param == moved


def test_factored_state_is_counted_at_its_own_size():
    optimizer, params = _stepped("adafactor")
    traffic = measure_traffic(optimizer, params)
    assert 0 < traffic.state_bytes_per_param < 1  # row and column means of the matrices
    assert 12 < traffic.step_bytes_per_param < 14


def test_limit_is_bytes_over_bandwidth():
    optimizer, params = _stepped("adam")
    traffic = measure_traffic(optimizer, params)
    assert traffic.limit_seconds(10.0) == pytest.approx(traffic.step_bytes / 10e9)


# -- memory and timing --------------------------------------------------------------------------------


def test_peak_extra_memory_sees_a_temporary():
    size = 1 << 20
    peak = peak_extra_bytes(lambda: torch.ones(size).sum())
    assert 4 * size <= peak < 4 * size + 4096
    kept = torch.zeros(size)
    assert peak_extra_bytes(lambda: kept.add_(1.0)) < 4096


def test_eager_adam_step_holds_one_full_temporary_and_fused_torch_adam_none():
    optimizer, params = _stepped("adam")
    n = sum(p.numel() for p in params)
    assert peak_extra_bytes(optimizer.step) >= 4 * max(p.numel() for p in params)
    reference = torch.optim.Adam(make_param_set(SMALL).fresh(), fused=True)
    reference.step()
    assert peak_extra_bytes(reference.step) < 4 * n


def test_interleaved_rounds_rotate_and_survive_a_failing_contender():
    calls = []

    class Recorder(torch.optim.Optimizer):
        def __init__(self, label):
            super().__init__([torch.zeros(2, requires_grad=True)], {})
            self.label = label

        def step(self, closure=None):
            calls.append(self.label)

    def broken():
        raise ValueError("no such thing")

    contenders = [Contender(label, lambda label=label: Recorder(label)) for label in "abc"]
    contenders.append(Contender("broken", broken))
    interleaved_rounds(contenders, steps=4, warmup=2)
    assert [len(c.samples) for c in contenders] == [4, 4, 4, 0]
    assert contenders[3].error == "ValueError: no such thing"
    timed = calls[6:]  # after 2 warm-up steps each
    assert timed == list("abcbcacababc")
    assert all(c.median_ms >= 0 for c in contenders[:3])


# -- peers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(spec.name for spec in optarena.available() if spec.torch_peers()))
def test_torch_peers_compute_the_same_algorithm(name):
    for peer in torch_peers(name):
        settings = hyperparameters(name)
        value = deviation(
            lambda p: optarena.create(name, p, fused=False),
            lambda p, peer=peer, settings=settings: peer.build(p, settings),
        )
        assert value < 1e-10, (peer.label, value)


def test_deviation_tells_different_algorithms_apart():
    value = deviation(lambda p: optarena.create("adam", p), lambda p: torch.optim.SGD(p, lr=1e-3))
    assert value > SAME_TOLERANCE


# -- the whole run, the files and the page ----------------------------------------------------------------


@pytest.fixture(scope="module")
def result():
    config = BenchConfig(
        optimizers=["adam", "sgd", "lamb"],
        params="small",
        steps=3,
        warmup=1,
        threads=1,
        backends=("eager",),
        compile_timing=False,
        bandwidth_elements=1 << 20,
    )
    return run_benchmark(config)


@pytest.mark.parametrize(
    "name, passes, again",
    [("adam", 1, 0), ("lamb", 2, 4 + 8), ("lars", 2, 4 + 4), ("ranger", 2, 4), ("adafactor", 3, 4 + 4 + 4)],
)
def test_floor_adds_what_later_passes_read_again(name, passes, again):
    optimizer, params = _stepped(name, **({"lr": 0.1} if name == "lars" else {}))
    traffic = measure_traffic(optimizer, params)
    assert optarena.registry.lookup(name).passes == passes
    floor = floor_bytes_per_param(name, traffic, make_param_set(get_preset("small")))
    assert floor == pytest.approx(traffic.step_bytes_per_param + again, abs=0.5)  # state read again: its size


def test_floor_counts_read_only_state_once():
    """Prodigy reads its starting point p0 and never writes it: 4 B, not the model's 8."""
    optimizer, params = _stepped("prodigy")
    traffic = measure_traffic(optimizer, params)
    floor = floor_bytes_per_param("prodigy", traffic, make_param_set(get_preset("small")))
    # p, g, m, v, s, p0 in the model (8 + 4 + 4 * 8 = 44), less p0's write, plus the second pass's p and g
    assert traffic.step_bytes_per_param == pytest.approx(44, abs=0.5)
    assert floor == pytest.approx(44 - 4 + 4 + 4, abs=0.5)


def test_rows_hold_measured_figures(result):
    assert [row["optimizer"] for row in result.rows] == ["adam", "sgd", "lamb"]
    adam, sgd, lamb = result.rows
    assert (adam["kind"], sgd["kind"], lamb["kind"]) == ("elementwise", "elementwise", "per-tensor")
    assert adam["target_vs_adam"] == 1.2 and lamb["target_vs_adam"] == 1.5
    n = SMALL.elements
    assert adam["state_bytes"] == 8 * n + 4 * SMALL.tensors
    assert adam["step_bytes_per_param"] == 28 and sgd["step_bytes_per_param"] == 12
    assert result.bandwidth["update_gbs"] > 0 and result.bandwidth["triad_gbs"] > 0
    stream = statistics.median(adam["samples_ms"]["in-place update (bandwidth)"]) / 1e3
    assert adam["bandwidth_gbs"] == pytest.approx(12 * n / stream / 1e9, rel=1e-3)
    assert adam["limit_ms"] == pytest.approx(28 * n / (adam["bandwidth_gbs"] * 1e9) * 1e3, rel=1e-3, abs=1e-3)
    for row in result.rows:
        assert row["fused_ms"] is None and row["compile_cold_empty_s"] is None
        assert len(row["samples_ms"]["optarena eager"]) == 3
        assert len(row["samples_ms"]["torch.optim.Adam(fused)"]) == 3
        assert row["eager_ms"] == pytest.approx(sorted(row["samples_ms"]["optarena eager"])[1], abs=1e-3)
        assert row["eager_vs_adam"] == pytest.approx(row["eager_ms"] / row["adam_fused_ms"], rel=1e-2)
    labels = {entry["label"] for entry in adam["peers"]}
    assert {"torch.optim.Adam(foreach)", "torch.optim.Adam(fused)"} <= labels
    assert adam["torch_ms"] == min(e["median_ms"] for e in adam["peers"] if e["library"] == "torch.optim")
    assert all(e["same_algorithm"] for e in adam["peers"] if e["library"] == "torch.optim")
    assert adam["eager_peak_extra_mb"] > 0


def test_files_and_tables_equal_the_rows(result, tmp_path):
    csv_path, json_path = write_outputs(result, tmp_path / "out" / "speed.json")
    assert csv_path.name == "speed.csv" and json_path.name == "speed.json"
    with csv_path.open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert tuple(lines[0]) == CSV_FIELDS
    assert [line["optimizer"] for line in lines] == ["adam", "sgd", "lamb"]
    assert float(lines[0]["eager_ms"]) == result.rows[0]["eager_ms"]
    loaded = read_result(json_path)
    assert loaded.rows == json.loads(json.dumps(result.rows))
    page = render_page([loaded], note="Provisional figures.")
    for title, columns in TABLES:
        assert f"### {title}" in page
        for cells in table_rows(loaded.rows, columns):
            assert "| " + " | ".join(cells) + " |" in page
    assert "> Provisional figures." in page
    assert "GPU: not measured" in page
    method = method_text()
    assert method in page
    assert SAME_TOLERANCE == 1e-3 and "within 1e-3 (relative)" in method  # the page states the rule used
    assert "qhm lr 0.1, momentum 0.999, nu 0.7" in method and "1.2x torch's fused Adam" in method


def test_reading_a_file_that_is_not_a_result_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a benchmark result"):
        read_result(bad)
    with pytest.raises(ValueError, match="no such file"):
        read_result(tmp_path / "missing.json")


def test_kind_looks_through_wrappers():
    class Wrapper:
        def __init__(self, inner):
            self.optimizer = inner

    lamb = optarena.create("lamb", [torch.zeros(3, requires_grad=True)])
    assert kind_of(Wrapper(lamb)) == "per-tensor"
    assert kind_of(torch.optim.SGD([torch.zeros(3, requires_grad=True)])) is None


def test_a_failing_compile_probe_is_reported_not_raised():
    with CompileTimer("small", 1, "cpu", timeout=120) as timer:
        times = timer.measure("nosuch", {})
    assert times.cold_empty_s is None
    assert "Unknown optimizer 'nosuch'" in times.error


# -- the command ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "adamm"], "Unknown optimizer 'adamm'"),
        (["--optimizers", "adam,Adam"], "repeated: adam"),
        (["--steps", "0"], "at least 1"),
        (["--params", "huge"], "invalid choice"),
        (["--backends", "triton"], "subset of fused,eager"),
        (["--device", "tpu"], "device must be"),
        (["--from-json", "missing.json"], "no such file"),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_command_writes_files_and_page(tmp_path, capsys):
    out = tmp_path / "speed"
    page = tmp_path / "performance.md"
    argv = [
        "bench",
        "--optimizers",
        "sgd",
        "--params",
        "small",
        "--backends",
        "eager",
        "--no-peers",
        "--no-compile-timing",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--bandwidth-elements",
        "100000",
        "--out",
        str(out),
        "--markdown",
        str(page),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Step time" in printed and "sgd" in printed
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["config"]["optimizers"] == ["sgd"] and len(saved["rows"]) == 1
    assert math.isfinite(saved["rows"][0]["eager_ms"])
    assert "| sgd |" in page.read_text()
    assert main(["bench", "--from-json", str(tmp_path / "speed.json"), "--markdown", str(page)]) == 0


def test_a_result_missing_fields_is_refused_by_name(result, tmp_path):
    _, json_path = write_outputs(result, tmp_path / "speed")
    data = json.loads(json_path.read_text())
    del data["bandwidth"]["update_gbs"]
    del data["rows"][0]["fused_ms"]
    json_path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="lacks update_gbs, fused_ms"):
        read_result(json_path)


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("steps", 0, "steps"),
        ("warmup", 2.5, "warmup"),
        ("threads", 0, "threads"),
        ("bandwidth_elements", -1, "bandwidth_elements"),
    ],
    ids=["steps", "warmup", "threads", "bandwidth"],
)
def test_config_rejects_counts_below_one_naming_the_field(field, value, named):
    from dataclasses import replace

    config = replace(BenchConfig(params="small"), **{field: value})
    with pytest.raises(ValueError, match=rf"^{named} must be a whole number >= 1"):
        config.check()
    BenchConfig(params="small", threads=None).check()  # None: torch's default


def test_rounds_and_bandwidth_reject_counts_below_one():
    with pytest.raises(ValueError, match="warmup must be a whole number"):
        interleaved_rounds([], steps=1, warmup=0)
    with pytest.raises(ValueError, match="repeats must be a whole number"):
        measure_bandwidth("cpu", elements=8, repeats=0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dtype": "float16"}, "dtype must be one of float32, bfloat16"),
        ({"state_dtype": "bfloat16"}, "state_dtype applies to bfloat16 parameters only"),
        ({"dtype": "bfloat16", "state_dtype": "int8"}, "state_dtype must be one of float32, bfloat16"),
        ({"peer_step_limit_s": 0.0}, "peer_step_limit_s must be a positive number"),
    ],
    ids=["dtype", "state-without-bf16", "state-unknown", "peer-limit"],
)
def test_config_rejects_dtypes_and_limits_it_cannot_use(changes, message):
    from dataclasses import replace

    with pytest.raises(ValueError, match=message):
        replace(BenchConfig(params="small"), **changes).check()
    replace(BenchConfig(params="small"), dtype="bfloat16", state_dtype="bfloat16", peer_step_limit_s=None).check()


def test_bfloat16_run_keeps_the_asked_state_dtype_and_counts_its_bytes():
    config = BenchConfig(
        optimizers=["adam"],
        params="small",
        steps=2,
        warmup=1,
        threads=1,
        backends=("eager",),
        peers=False,
        compile_timing=False,
        memory=False,
        bandwidth_elements=1 << 16,
        dtype="bfloat16",
        state_dtype="bfloat16",
    )
    (row,) = run_benchmark(config).rows
    # two bf16 moments and the parameter's bf16 rounding remainder (a small share is step counters)
    assert row["state_bytes_per_param"] == pytest.approx(6.0, abs=0.01)
    # parameter read and written, gradient read, each state tensor read and written
    assert row["floor_bytes_per_param"] == pytest.approx(2 * 2 + 2 + 2 * 6, abs=0.01)
    assert row["settings"]["state_dtype"] == "bfloat16"


def test_a_contender_whose_warm_up_step_runs_past_the_limit_is_reported_not_timed():
    import time

    from optarena.bench.timing import warm_up

    class Slow:
        def step(self):
            time.sleep(5)

    class SlowAfterTheFirst:  # the first step compiles; the later ones are what is limited
        steps = 0

        def step(self):
            self.steps += 1
            time.sleep(0.3 if self.steps == 1 else 5)

    slow = Contender("slow peer", SlowAfterTheFirst)
    started = time.perf_counter()
    assert not warm_up(slow, 3, torch.device("cpu"), step_limit_s=0.1)
    assert time.perf_counter() - started < 3
    assert slow.optimizer is None and "StepLimitExceeded" in slow.error and "0.1 s" in slow.error
    quick = Contender("quick peer", lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1))
    assert warm_up(quick, 2, torch.device("cpu"), step_limit_s=5.0) and quick.error is None


def test_each_measured_optimizer_is_handed_on_before_the_next_starts(tmp_path):
    config = BenchConfig(
        optimizers=["sgd", "adam"],
        params="small",
        steps=1,
        warmup=1,
        threads=1,
        backends=("eager",),
        peers=False,
        compile_timing=False,
        memory=False,
        bandwidth_elements=1 << 16,
    )
    seen = []

    def save(partial):
        seen.append([row["optimizer"] for row in partial.rows])
        write_outputs(partial, tmp_path / "partial")

    result = run_benchmark(config, on_row=save)
    assert seen == [["sgd"], ["sgd", "adam"]]
    assert [row["optimizer"] for row in read_result(tmp_path / "partial.json").rows] == ["sgd", "adam"]
    assert len(result.rows) == 2

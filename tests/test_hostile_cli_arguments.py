"""Command lines a careless or hostile user might type: one line, exit 2, nothing written."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optarena.cli import main
from optarena.cli_types import real, whole

HUGE = str(10**12)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["race", "--workload", "rosenbrock", "--trials", str(10**11)], "--trials: expected a number from 1 to 100000"),
        (["race", "--workload", "rosenbrock", "--seeds", HUGE], "--seeds: expected a number from 1 to 10000"),
        (["race", "--workload", "rosenbrock", "--threads", HUGE], "--threads: expected a number from 1 to 4096"),
        (["race", "--workload", "rosenbrock", "--workers", "0"], "--workers: expected a number from 1 to 4096"),
        (["trajectories", "--steps", HUGE], "more than this machine's"),
        (["trajectories", "--starts", HUGE], "more than this machine's"),
        (["trajectories", "--trials", HUGE], "--trials: expected a number from 1 to 100000"),
        (["nqm", "--runs", HUGE], "more than this machine's"),
        (["nqm", "--dim", HUGE], "more than this machine's"),
        (["landscape", "--grid", "100000"], "--grid: a grid needs 2 to 1001 points per axis"),
        (["landscape", "--out", "missing/landscape.png"], "the output folder 'missing' does not exist"),
        (["demo", "--threads", HUGE], "--threads: expected a number from 1 to 4096"),
        (["docs", "--check", "--root", "/nonexistent"], "--root '/nonexistent' is not a folder"),
        (["docs", "--root", "/nonexistent"], "--root '/nonexistent' is not a folder"),
        (["report", "--db", "runs.sqlite"], "no result store at 'runs.sqlite'"),
        (["bench", "--from-json", "r.json", "--markdown", "r.json"], "is the input"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "bench":
        (tmp_path / "r.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("optarena")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_allocation_that_still_fails_is_one_line_and_exit_1(monkeypatch, capsys):
    import optarena.cli as cli

    def exhausted(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 512000000000512 bytes."
        )

    monkeypatch.setattr(cli, "_list", exhausted)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("optarena list: error: not enough memory") and "Traceback" not in err


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=30), low=st.integers(0, 5), span=st.integers(0, 1000))
def test_a_count_is_a_whole_number_in_range_or_says_what_is_allowed(text, low, span):
    parse = whole(low, low + span)
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as error:
        assert "expected a" in str(error)
    else:
        assert low <= value <= low + span and value == int(text)


@settings(max_examples=80, deadline=None)
@given(text=st.one_of(st.text(max_size=20), st.floats().map(repr)))
def test_a_real_is_finite_and_in_range_or_says_what_is_allowed(text):
    try:
        value = real(0.0, 1.0)(text)
    except argparse.ArgumentTypeError as error:
        assert "expected a number" in str(error)
    else:
        assert 0.0 < value < 1.0

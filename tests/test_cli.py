"""The ``optarena`` command line: list, demo and docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from optarena.cli import main
from optarena.demo import run_demo
from optarena.registry import available

ROOT = Path(__file__).resolve().parents[1]


def test_list_prints_every_registry_name(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in available():
        assert entry.name in out
        if entry.paper is not None:
            assert str(entry.paper.year) in out


def test_docs_check_passes_on_the_repository(capsys):
    assert main(["docs", "--check", "--root", str(ROOT)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_docs_check_fails_on_a_stale_page_and_docs_repairs_it(tmp_path, capsys):
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 1
    assert "docs/optimizers.md" in capsys.readouterr().err
    assert main(["docs", "--root", str(tmp_path)]) == 0
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 0
    page = tmp_path / "docs" / "optimizers.md"
    page.write_text(page.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 1


def test_demo_rows_come_from_real_training():
    rows = run_demo(["sgd", "adam"], seeds=1, epochs=3, points=300)
    assert sorted(row["name"] for row in rows) == ["adam", "sgd"]
    for row in rows:
        run = row["runs"][0]
        assert len(row["runs"]) == 1
        assert run["train_loss"] < run["initial_loss"]
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["seconds"] > 0
    by_name = {row["name"]: row for row in rows}
    assert by_name["sgd"]["lr_source"] == "demo"
    assert by_name["adam"]["lr_source"] == "default"
    assert by_name["adam"]["lr"] == 1e-3
    accuracies = [row["test_accuracy"] for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)


def test_demo_is_deterministic_per_seed():
    first = run_demo(["adam"], seeds=1, epochs=2, points=200)[0]["runs"][0]
    second = run_demo(["adam"], seeds=1, epochs=2, points=200)[0]["runs"][0]
    assert first["train_loss"] == second["train_loss"]
    assert first["test_accuracy"] == second["test_accuracy"]


def test_demo_command_prints_a_table(capsys):
    assert main(["demo", "--optimizers", "sgd,adam", "--seeds", "1", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "sgd" in out and "adam" in out
    assert "test acc" in out
    assert "Wall time" in out


def test_demo_unknown_optimizer_exits_2_with_a_suggestion(capsys):
    assert main(["demo", "--optimizers", "sgd,adamm", "--seeds", "1", "--epochs", "1"]) == 2
    captured = capsys.readouterr()
    assert "Unknown optimizer 'adamm'" in captured.err
    assert "Did you mean 'adam'" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("argv", [[], ["demo", "--seeds", "0"], ["frobnicate"]])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "optarena", "demo", "--optimizers", "nosuch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Unknown optimizer 'nosuch'" in done.stderr
    assert "Traceback" not in done.stderr


def test_tables_written_to_a_pipe_are_wide_enough_not_to_wrap(monkeypatch):
    import io

    from optarena.cli_types import PIPE_WIDTH, wide_console

    monkeypatch.delenv("COLUMNS", raising=False)
    piped = wide_console(file=io.StringIO())
    assert not piped.is_terminal and piped.width == PIPE_WIDTH
    assert wide_console(file=io.StringIO(), width=50).width == 50
    monkeypatch.setenv("COLUMNS", "90")
    assert wide_console(file=io.StringIO()).width == 90

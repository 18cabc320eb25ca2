"""User text in names, metrics, descriptions and paths: printed and drawn as it is, never read as markup."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from optarena.arena import plots
from optarena.cli import main
from optarena.cli_types import shown

NAME = "bad[/red]name [bold]<script>alert(1)</script>"
METRIC = "loss $x^$ & <b>"
DESCRIPTION = "[link=http://x]desc[/link] </p><p>"

MODULE = f"""
    import sys
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from toy_workloads import ToyRun, ToyWorkload
    from optarena.arena.workload import Target

    class Run(ToyRun):
        def evaluate(self):
            return {{{METRIC!r}: super().evaluate()["test_loss"]}}

    class Hostile(ToyWorkload):
        def setup(self, seed, *, sparse=False):
            return Run(self, seed)

    def make(quick=False):
        workload = Hostile({NAME!r}, Target({METRIC!r}, 0.5, "min"), steps=6, eval_every=3)
        workload.description = {DESCRIPTION!r}
        return workload
"""


def test_markup_and_tex_in_names_and_paths_are_shown_as_typed(tmp_path, monkeypatch, capsys):
    (tmp_path / "hostile_names.py").write_text(textwrap.dedent(MODULE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    db = "exp[final][red].sqlite"
    argv = [
        "race",
        "--workload",
        "hostile_names:make",
        "--optimizers",
        "sgd",
        "--trials",
        "2",
        "--seeds",
        "1",
        "--executor",
        "inline",
        "--db",
        db,
    ]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"store {db}." in out and f"reused from {db}" in out
    assert f"{NAME}: final loss $x^$ &" in out and "<b> (target <= 0.5)" in out  # the title wraps at the table

    assert main(["report", "--db", db, "--out", "r[red].html"]) == 0
    html = (tmp_path / "r[red].html").read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "loss $x^$ &amp; &lt;b&gt;" in html and "</p><p>" not in html.split("<body>")[1].split("<h3>")[0]


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_any_text_prints_as_itself(text):
    console = Console(file=io.StringIO(), width=500, color_system=None, highlight=False, emoji=False)
    console.print(shown(text), end="")
    assert console.file.getvalue() == text


@settings(max_examples=15, deadline=None)
@given(
    name=st.text(st.characters(min_codepoint=32, max_codepoint=0x24F, blacklist_categories=("Cs", "Cc")), max_size=20)
)
def test_any_metric_name_is_drawn(name):
    steps = np.arange(1.0, 6.0)
    curve = [(steps, np.linspace(1.0, 0.5, 5))]
    svg = plots.curves_figure({"sgd": curve}, {"sgd": curve}, {"sgd": "#1f77b4"}, name, 0.6, 5)
    assert svg.startswith("<svg")


def test_a_landscape_of_a_workload_with_tex_in_its_name_is_drawn(tmp_path, monkeypatch):
    from optarena.landscape.command import run_landscape

    (tmp_path / "tex_names.py").write_text(
        textwrap.dedent("""
        from optarena.arena.workloads.digits import DigitsMLP

        def make():
            workload = DigitsMLP(steps=4, eval_every=4)
            workload.name = "digits $x^$ [/red]"
            return workload
    """),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "landscape $x^$.png"
    result = run_landscape("tex_names:make", ["sgd"], grid=3, out=out, view="contour", evaluation_size=64)
    assert result.out == out and out.read_bytes().startswith(b"\x89PNG")

"""The claims: tests stated in advance, verdicts that follow them, and a quick run end to end."""

from __future__ import annotations

import json
import math

import optarena.claims.studies as studies
from optarena.claims import CLAIMS, VERDICTS
from optarena.claims.runner import Run
from optarena.cli import main


def test_every_claim_states_its_test_and_every_verdict_s_rule_in_advance():
    assert list(CLAIMS) == ["radam", "adamw", "lookahead", "lamb", "adabound", "one-cycle"]
    for claim in CLAIMS.values():
        test = claim.test()
        assert test.startswith("Test") and "Holds" in test or "holds" in test, claim.name
        assert "not hold at this scale" in test and "nconclusive" in test, claim.name
        assert claim.paper.split()[-1].startswith("https://arxiv.org/abs/")


def _fake(values_by_study):
    """Stand-in for ``runs``: each study's runs from ``{label: [(setting, seed, final, steps_to_target)]}``."""

    def runs(store, study):
        return [
            Run(setting, seed, "finished", final, final, steps, ((100, final),))
            for setting, seed, final, steps in values_by_study[study.label]
        ]

    return runs


def test_the_radam_verdict_follows_its_stated_rule(monkeypatch):
    claim = CLAIMS["radam"]
    grid = claim.studies(quick=True)
    lrs = [s["lr"] for s in grid[0].grid]

    def arm(values):
        return [({"lr": lr}, 1, v, None) for lr, v in zip(lrs, values)]

    monkeypatch.setattr(
        studies,
        "runs",
        _fake({"Adam": arm([1.0, 0.5, 0.1]), "Adam + warm-up": arm([1.0, 1.0, 0.1]), "RAdam": arm([1.0, 1.0, 0.95])}),
    )
    verdict = claim.judge(None, grid)
    assert verdict.verdict == "holds" and verdict.numbers["width"] == {"Adam": 1, "Adam + warm-up": 2, "RAdam": 3}
    monkeypatch.setattr(
        studies,
        "runs",
        _fake({"Adam": arm([1.0, 1.0, 0.1]), "Adam + warm-up": arm([1.0, 1.0, 0.1]), "RAdam": arm([1.0, 0.2, 0.1])}),
    )
    assert claim.judge(None, grid).verdict == "does not hold at this scale"
    monkeypatch.setattr(
        studies,
        "runs",
        _fake({"Adam": arm([1.0, 1.0, 0.1]), "Adam + warm-up": arm([1.0, 1.0, 0.1]), "RAdam": arm([1.0, 1.0, 0.1])}),
    )
    assert claim.judge(None, grid).verdict == "inconclusive"


def test_the_lamb_verdict_compares_speed_ups_and_is_inconclusive_when_lamb_misses_at_the_small_batch(monkeypatch):
    claim = CLAIMS["lamb"]
    grid = claim.studies(quick=True)

    def fake(steps):
        return {s.label: [(setting, 1, 0.9, steps[s.label]) for setting in s.grid] for s in grid}

    base = {
        "momentum b1024": 400,
        "momentum b4096": 200,
        "Adam b1024": 400,
        "Adam b4096": 200,
        "LARS b1024": 400,
        "LARS b4096": 150,
    }
    monkeypatch.setattr(studies, "runs", _fake(fake({**base, "LAMB b1024": 400, "LAMB b4096": 100})))
    verdict = claim.judge(None, grid)
    assert verdict.verdict == "holds" and verdict.numbers["speedup"]["LAMB"] == 4.0
    monkeypatch.setattr(studies, "runs", _fake(fake({**base, "LAMB b1024": 400, "LAMB b4096": 300})))
    assert claim.judge(None, grid).verdict == "does not hold at this scale"
    monkeypatch.setattr(studies, "runs", _fake(fake({**base, "LAMB b1024": None, "LAMB b4096": 100})))
    assert claim.judge(None, grid).verdict == "inconclusive"
    assert math.isinf(claim.judge(None, grid).numbers["steps"]["LAMB"][1024])


def test_a_quick_claim_runs_through_the_arena_into_its_own_store_with_a_figure_and_a_verdict(tmp_path, capsys):
    out = tmp_path / "claims"
    assert main(["claims", "adamw", "--quick", "--out", str(out), "--executor", "inline"]) == 0
    result = json.loads((out / "adamw" / "verdict.json").read_text())
    assert result["verdict"]["verdict"] in VERDICTS and result["trials"] == result["ran"] == 8
    assert (out / "adamw" / "figure.png").stat().st_size > 1000 and (out / "adamw" / "runs.sqlite").is_file()
    page = (out / "claims.md").read_text()
    assert "## adamw" in page and "adamw/figure.png" in page and result["verdict"]["verdict"] in page
    capsys.readouterr()
    assert main(["claims", "adamw", "--quick", "--out", str(out), "--executor", "inline"]) == 0
    assert "8 runs, 0 run now" in " ".join(capsys.readouterr().out.split())
    report = tmp_path / "report.html"
    assert main(["report", "--db", str(out / "adamw" / "runs.sqlite"), "--claims", str(out), "--out", str(report)]) == 0
    html = report.read_text()
    assert "<h2>Claims</h2>" in html and "data:image/png;base64," in html and result["verdict"]["verdict"] in html
    assert main(["claims", "adam-is-best", "--out", str(out)]) == 2
    assert "unknown claim 'adam-is-best'" in capsys.readouterr().err

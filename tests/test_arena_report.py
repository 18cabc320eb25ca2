"""The HTML report: self-contained, numbers from the store, rendered by a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
from html.parser import HTMLParser

import pytest
from arena_helpers import race

from optarena.arena.report import write_report

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    db = folder / "runs.sqlite"
    race(
        db,
        workloads=("toy_workloads:classifier", "toy_workloads:regression"),
        optimizers=("sgd", "adam", "momentum"),
        trials=4,
        seeds=2,
    )
    return db, write_report(db, folder / "report.html")


class _Cells(HTMLParser):
    """Leaderboard cells: (workload, optimizer, column) -> data-value."""

    def __init__(self):
        super().__init__()
        self.workload = self.optimizer = None
        self.values: dict[tuple[str, str, str], str] = {}
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "table" and "leaderboard" in (attrs.get("class") or ""):
            self.workload = attrs["data-workload"]
        if tag == "tr" and self.workload:
            self.optimizer = attrs.get("data-optimizer")
        if tag == "td" and self.workload and self.optimizer and "data-column" in attrs and "data-value" in attrs:
            self.values[(self.workload, self.optimizer, attrs["data-column"])] = attrs["data-value"]

    def handle_endtag(self, tag):
        if tag == "table":
            self.workload = None


def _expected_from_store(db):
    """Mean final metric of each optimizer's reruns, straight from SQL."""
    connection = sqlite3.connect(db)
    rows = connection.execute(
        "SELECT w.name, s.optimizer, t.final_metric FROM study_trials st JOIN studies s ON s.id = st.study "
        "JOIN trials t ON t.key = st.trial JOIN workloads w ON w.key = s.workload_key "
        "WHERE st.phase = 'rerun' AND t.status = 'finished'"
    ).fetchall()
    finals: dict[tuple[str, str], list[float]] = {}
    for workload, optimizer, value in rows:
        finals.setdefault((workload, optimizer), []).append(value)
    return {key: statistics.fmean(values) for key, values in finals.items()}


def test_the_report_is_one_self_contained_file(report):
    _, path = report
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "url(http" not in html and "@import" not in html
    assert html.count("<svg") == 2 * 3 + 1  # per workload: curves, lr sensitivity, expected best; one profile
    for heading in (
        "Leaderboard",
        "Training curves",
        "Learning-rate sensitivity",
        "Expected best after k trials",
        "Performance profile",
    ):
        assert heading in html


def test_every_leaderboard_number_comes_from_the_store(report):
    db, path = report
    parser = _Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    expected = _expected_from_store(db)
    assert len(expected) == 6
    for (workload, optimizer), mean in expected.items():
        assert float(parser.values[(workload, optimizer, "final")]) == pytest.approx(mean, rel=1e-12)


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("OPTARENA_REQUIRE_BROWSER") == "1":
        pytest.fail("OPTARENA_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install -y chromium)")
    pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium) to run this test")


def test_a_headless_browser_renders_the_report_with_the_stored_numbers(report, tmp_path):
    browser = _browser()
    db, path = report
    common = [browser, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    parser = _Cells()
    parser.feed(dom)
    for (workload, optimizer), mean in _expected_from_store(db).items():
        assert float(parser.values[(workload, optimizer, "final")]) == pytest.approx(mean, rel=1e-12)
    assert dom.count("<svg") == 7

    png = tmp_path / "report.png"
    subprocess.run(
        [*common, "--window-size=1100,1800", f"--screenshot={png}", path.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib.image import imread

    pixels = (imread(png)[:, :, :3] * 255).astype(int)
    assert pixels.shape[:2] == (1800, 1100)
    # The first figures draw the three optimizers in tab10's first colours: their pixels show the SVG rendered.
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        close = (abs(pixels - colour).max(axis=2) < 12).sum()
        assert close > 800, (colour, close)  # the legend swatches alone give about 200

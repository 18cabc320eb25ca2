"""``optarena report``: one self-contained HTML file from a result store.

Inline CSS and inline SVG figures, no scripts, fonts or links to fetch: the file works
offline and can be mailed. Every number shown is read from the store through
:mod:`optarena.arena.results` and computed by :mod:`optarena.arena.scoring`; each
leaderboard cell also carries the exact value in a ``data-value`` attribute.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from optarena import __version__
from optarena.arena import plots
from optarena.arena.report_diagnostics import diagnostics_section
from optarena.arena.results import WorkloadResult, load_curves, load_results
from optarena.arena.scoring import (
    PROFILE_TAU_MAX,
    LeaderboardRow,
    expected_best,
    floor_value,
    leaderboard,
    lr_sensitivity,
    performance_profile,
)
from optarena.arena.store import Store, store_files
from optarena.arena.trial import format_value
from optarena.files import check_output, write_atomically

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5rem 2rem 3rem; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 2px solid #d8dde6; padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .4rem; }
h4 { font-size: .95rem; margin: 1.2rem 0 .3rem; }
p.meta, p.note { color: #4d566a; margin: .3rem 0; }
p.note { font-size: .9rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { padding: .35rem .5rem; border-bottom: 1px solid #e3e7ee; text-align: left; vertical-align: top; }
th { background: #f2f4f8; font-weight: 600; }
td.name { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.first td { background: #eef7ee; }
table.leaderboard { width: 100%; }
td.hp { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .8rem; color: #333;
        overflow-wrap: anywhere; min-width: 9em; }
span.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .4em;
              vertical-align: -.05em; }
span.warn { color: #a04000; }
figure { margin: .4rem 0 1rem; }
figure svg { max-width: 100%; height: auto; }
nav a { margin-right: 1rem; }
"""


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if math.isinf(value):
        return "never"
    return f"{value:.{digits}g}"


def _cell(value: float | None, text: str | None = None, column: str | None = None) -> str:
    """A numeric cell: the text shown, the exact value in ``data-value``."""
    data = "" if value is None else f' data-value="{value!r}"'
    name = "" if column is None else f' data-column="{column}"'
    return f'<td class="num"{name}{data}>{escape(text if text is not None else _fmt(value))}</td>'


def _hyperparameters(hp: dict[str, Any] | None) -> str:
    if not hp:
        return "–"
    return ", ".join(f"{k}={format_value(v)}" for k, v in hp.items())


def _leaderboard_table(workload: WorkloadResult, rows: list[LeaderboardRow], colours: dict[str, str]) -> str:
    metric = escape(workload.target.metric)
    head = (
        "<tr><th class='num'>#</th><th>optimizer</th>"
        f"<th class='num'>final {metric}<br>mean ± sd</th><th class='num'>best {metric}<br>mean</th>"
        "<th class='num'>seeds at<br>target</th><th class='num'>steps to<br>target</th>"
        "<th class='num'>seconds to<br>target</th><th class='num'>diverged<br>tuning / reruns</th>"
        "<th>tuned hyperparameters</th></tr>"
    )
    body = []
    for row in rows:
        final = f"{_fmt(row.final_mean)} ± {_fmt(row.final_std, 2)}" if row.final_mean is not None else "diverged"
        incomplete = "" if row.complete else " <span class='warn'>(incomplete)</span>"
        body.append(
            f"<tr class='{'first' if row.rank == 1 else ''}' data-optimizer='{escape(row.optimizer)}'>"
            f"<td class='num'>{row.rank}</td>"
            f"<td class='name'><span class='swatch' style='background:{colours[row.optimizer]}'></span>"
            f"{escape(row.optimizer)}{incomplete}</td>"
            + _cell(row.final_mean, final, "final")
            + _cell(row.best_mean, column="best")
            + f"<td class='num' data-column='reached'>{row.reached} / {row.seeds}</td>"
            + _cell(row.steps_to_target, _fmt(row.steps_to_target, 6), "steps")
            + _cell(row.seconds_to_target, _fmt(row.seconds_to_target, 3), "seconds")
            + f"<td class='num'>{row.tuning_diverged} / {row.tuning_trials} · {row.diverged} / {row.seeds}</td>"
            f"<td class='hp'>{escape(_hyperparameters(row.study.tuned(row.hyperparameters)))}</td></tr>"
        )
    return f"<table class='leaderboard' data-workload='{escape(workload.label)}'>{head}{''.join(body)}</table>"


def _workload_section(store: Store, workload: WorkloadResult, index: int, colours: dict[str, str]) -> str:
    rows = leaderboard(workload)
    target = workload.target
    relation = "≥" if target.mode == "max" else "≤"
    studies = {s.optimizer: s for s in workload.studies}
    budgets = sorted({(s.search, s.trials, s.seeds) for s in workload.studies})
    tuned = (
        "the learning rate"
        if all(s.tune == ["lr"] for s in workload.studies)
        else "each optimizer's declared hyperparameters"
    )
    budget_text = "; ".join(
        f"{search} search over {tuned}, {trials} trial{'s' if trials != 1 else ''} per optimizer, "
        f"the winner rerun on {seeds} fresh seed{'s' if seeds != 1 else ''}"
        for search, trials, seeds in budgets
    )
    warning = (
        "<p class='note'><span class='warn'>The optimizers here were raced with different budgets; "
        "compare with care.</span></p>"
        if len(budgets) > 1
        else ""
    )

    train, metric = {}, {}
    for row in rows:
        reruns = studies[row.optimizer].reruns
        keys = [t.key for t in reruns]
        train[row.optimizer] = list(load_curves(store, keys, "train_loss").values())
        metric[row.optimizer] = list(load_curves(store, keys, target.metric).values())
    floor = floor_value(workload)
    sensitivity = {r.optimizer: lr_sensitivity(studies[r.optimizer]) for r in rows}
    expected = {
        r.optimizer: curve
        for r in rows
        if (curve := expected_best(studies[r.optimizer], target.mode, floor)) is not None
    }
    parts = [
        f"<section class='workload' id='workload-{index}'>",
        f"<h2>{escape(workload.label)}</h2>",
        f"<p class='meta'>{escape(workload.description)}</p>",
        f"<p class='meta'>Target: <b>{escape(target.metric)} {relation} {target.value:g}</b>. "
        f"{workload.steps} steps per run, evaluated every {workload.eval_every}. {escape(budget_text)}.</p>",
        warning,
        "<h3>Leaderboard</h3>",
        _leaderboard_table(workload, rows, colours),
        "<p class='note'>Final and best: the target metric over the reruns of the tuned configuration "
        "(best: the best evaluation during a run). Steps and seconds to target: median over the reruns "
        "(never: most reruns did not reach it); seconds count training only, not evaluation. "
        "Quasi-random search gives every optimizer the same points of the unit cube, so optimizers with "
        "the same search space can share tuned values.</p>",
        "<h3>Training curves</h3>",
        f"<figure>{plots.curves_figure(train, metric, colours, target.metric, target.value, workload.steps)}</figure>",
        "<p class='note'>Reruns of each optimizer's tuned configuration: the mean over seeds, "
        "the band from the lowest to the highest seed.</p>",
        "<h3>Learning-rate sensitivity</h3>",
        f"<figure>{plots.sensitivity_figure(sensitivity, colours, target.metric, target.value, floor)}</figure>",
        "<p class='note'>Every tuning trial: its final value against its learning rate (other tuned "
        "hyperparameters vary too). A flat, wide curve means an optimizer that forgives a poorly chosen "
        "learning rate; crosses are runs that diverged.</p>",
        "<h3>Expected best after k trials</h3>",
        f"<figure>{plots.expected_best_figure(expected, colours, target.metric, target.value)}</figure>",
        "<p class='note'>The expected best final value if only k of the tuning trials had been run "
        "(exact under the trials' empirical distribution), with a 90% bootstrap band. Diverged trials count "
        "as the worst final value seen on this workload.</p>",
        diagnostics_section(store, workload, [r.optimizer for r in rows], colours),
        "</section>",
    ]
    return "\n".join(parts)


def _profile_section(workloads: list[WorkloadResult], colours: dict[str, str]) -> str:
    profile = performance_profile(workloads, "steps")
    order = sorted(profile.ratios, key=lambda name: -profile.score(name))
    unreached = [
        label
        for i, label in enumerate(profile.workloads)
        if not any(math.isfinite(ratios[i]) for ratios in profile.ratios.values())
    ]
    rows = "".join(
        f"<tr data-optimizer='{escape(name)}'><td class='name'><span class='swatch' style='background:{colours[name]}'></span>"
        f"{escape(name)}</td>"
        + _cell(profile.score(name), f"{profile.score(name):.3f}", "score")
        + "".join(_cell(r, _fmt(r, 3)) for r in profile.ratios[name])
        + "</tr>"
        for name in order
    )
    head = (
        "<tr><th>optimizer</th><th class='num'>score</th>"
        + "".join(f"<th class='num'>{escape(label)}</th>" for label in profile.workloads)
        + "</tr>"
    )
    note = (
        f"<p class='note'><span class='warn'>No optimizer reached the target on: {escape(', '.join(unreached))}."
        "</span></p>"
        if unreached
        else ""
    )
    return "\n".join(
        [
            "<section id='profile'>",
            "<h2>Performance profile</h2>",
            "<p class='meta'>For each workload, an optimizer's cost is the median number of steps its reruns took "
            "to reach the target; its ratio is that cost over the cheapest optimizer's. The curve gives the "
            "fraction of workloads on which an optimizer is within a factor tau of the fastest (Dolan &amp; Moré, "
            "as in AlgoPerf); the score is the area under it for tau from 1 to "
            f"{PROFILE_TAU_MAX:g}, scaled to 0..1.</p>",
            f"<figure>{plots.profile_figure(profile, colours, PROFILE_TAU_MAX)}</figure>",
            f"<table class='profile'>{head}{rows}</table>",
            note,
            "</section>",
        ]
    )


def build_report(
    store: Store, workload: str | None = None, title: str | None = None, claims: str | Path | None = None
) -> str:
    """The report's HTML for every workload in ``store`` (or only ``workload``), its AlgoPerf scores, and the
    claims page of ``claims`` (a directory written by ``optarena claims``) when given."""
    from optarena.arena.algoperf_report import algoperf_sections, claims_section

    workloads = load_results(store, workload)
    extra = [algoperf_sections(store) if workload is None else ""]
    if claims is not None:
        extra.append(claims_section(claims))
    if not workloads and not any(extra):
        which = f" for workload {workload!r}" if workload else ""
        raise ValueError(f"{str(store.path)!r} holds no races{which}: run `optarena race --db {store.path}` first")
    trials = store.count("trials")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    nav = " ".join(f"<a href='#workload-{i}'>{escape(w.label)}</a>" for i, w in enumerate(workloads))
    # One colour per optimizer across the whole report, in the order of the first leaderboards.
    names: list[str] = []
    for w in workloads:
        names.extend(r.optimizer for r in leaderboard(w) if r.optimizer not in names)
    colours = plots.palette(names)
    sections = [_workload_section(store, w, i, colours) for i, w in enumerate(workloads)]
    title = title or "optarena race report"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f"<p class='meta'>{len(workloads)} workload{'s' if len(workloads) != 1 else ''}, {trials} stored trials, "
            f"from <code>{escape(store.path.name)}</code>; written by optarena {__version__} on {generated}.</p>",
            f"<nav>{nav}"
            + (" <a href='#profile'>performance profile</a>" if workloads else "")
            + (" <a href='#algoperf-external'>AlgoPerf score</a>" if "id='algoperf-" in extra[0] else "")
            + (" <a href='#claims'>claims</a>" if claims is not None else "")
            + "</nav>",
            *sections,
            _profile_section(workloads, colours) if workloads else "",
            *extra,
            "</body></html>",
        ]
    )


def write_report(
    db: str | Path, out: str | Path, workload: str | None = None, claims: str | Path | None = None
) -> Path:
    """Read the store at ``db`` and write the report to ``out`` (with the claims page of the
    studies under ``claims``, if given); returns the path written.

    An ``out`` that is the store (or one of its SQLite side files), by any name, is refused
    with :class:`optarena.files.OutputError` before the store is opened.
    """
    inputs = store_files(db)
    check_output(out, inputs, create_folder=True)
    with Store(db, readonly=True) as store:
        html = build_report(store, workload, claims=claims)
    return write_atomically(out, html, inputs, create_folder=True)

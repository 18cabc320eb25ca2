"""The report's AlgoPerf and claims sections: benchmark score tables, profiles with bands, verdicts.

Both return HTML fragments for :func:`optarena.arena.report.build_report`; figures are inline
SVG (profiles) or inline PNG (the claims' figures), so the report stays one offline file.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

import numpy as np

from optarena.arena import plots
from optarena.arena.algoperf import RULESETS
from optarena.arena.algoperf_scoring import ScoreTable, load_algoperf, score_table
from optarena.arena.scoring import PROFILE_TAU_MAX
from optarena.arena.store import Store


@plots.styled
def profile_band_figure(table: ScoreTable, colours: dict[str, str]) -> str:
    """rho(tau) for every optimizer with its 90% bootstrap band over studies, tau from 1 to 4."""
    figure, (axes,) = plots._figure(7.5, 3.6)
    taus = np.linspace(1.0, PROFILE_TAU_MAX, 121)
    for row in table.rows:
        colour = colours.get(row.optimizer, "0.5")
        axes.step(
            taus,
            table.profile.rho(row.optimizer, taus),
            where="post",
            color=colour,
            lw=1.8,
            label=f"{row.optimizer} ({row.score.value:.2f})",
        )
        band_taus, low, high = table.rho_band[row.optimizer]
        axes.fill_between(band_taus, low, high, step="post", color=colour, alpha=0.12, lw=0)
    axes.set_xlim(1, PROFILE_TAU_MAX)
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel(f"tau: within this factor of the fastest ({table.measure} to target)")
    axes.set_ylabel("fraction of workloads")
    plots._legend_right(figure, axes)
    return plots.to_svg(figure)


def _score_table_html(table: ScoreTable) -> str:
    unit = "steps" if table.measure == "steps" else "s"
    head = (
        "<tr><th class='num'>#</th><th>optimizer</th><th class='num'>score [90% CI]</th>"
        + "".join(f"<th class='num'>{escape(w)}</th>" for w in table.workloads)
        + "</tr>"
    )
    body = []
    for row in table.rows:
        cells = []
        for w in table.workloads:
            t = row.times[w]
            shown = "never" if math.isinf(t.value) else f"{t.value:.4g} {unit} [{t.low:.4g}, {t.high:.4g}]"
            cells.append(f"<td class='num' data-value='{t.value}'>{escape(shown)} ({row.reached[w]})</td>")
        body.append(
            f"<tr data-optimizer='{escape(row.optimizer)}'><td class='num'>{row.rank}</td>"
            f"<td class='name'>{escape(row.optimizer)}</td>"
            f"<td class='num' data-value='{row.score.value}' data-column='score'>{row.score.value:.3f} "
            f"[{row.score.low:.2f}, {row.score.high:.2f}]</td>{''.join(cells)}</tr>"
        )
    return (
        f"<table class='algoperf' data-measure='{table.measure}' data-ruleset='{table.ruleset}'>"
        f"{head}{''.join(body)}</table>"
    )


def algoperf_sections(store: Store) -> str:
    """The benchmark score tables and profiles of every AlgoPerf ruleset in the store ('' when none)."""
    parts = []
    for ruleset in RULESETS:
        results = load_algoperf(store, ruleset)
        if not any(r.held_out_of is None for r in results):
            continue
        tables = [score_table(results, measure, ruleset) for measure in ("steps", "seconds")]
        colours = plots.palette([row.optimizer for row in tables[0].rows])
        held = tables[0].held_out
        parts += [
            f"<section id='algoperf-{ruleset}'>",
            f"<h2>AlgoPerf benchmark score ({escape(ruleset)} tuning)</h2>",
            "<p class='meta'>Per workload, each study's time is its fastest trial to the stored target; the "
            "workload's time is the median over studies (never: most studies missed). The score is the area under "
            f"rho(tau) for tau in [1, {PROFILE_TAU_MAX:g}], scaled to 0..1. Brackets: 90% bootstrap intervals over "
            f"the {tables[0].studies} studies (seeds). Seconds count training only, not evaluation.</p>",
            (
                f"<p class='note'>Held-out variants raced: {escape(', '.join(held))}; missing one's target makes the "
                "base workload's time infinite.</p>"
                if held
                else ""
            ),
        ]
        for table in tables:
            parts += [
                f"<h3>By {table.measure}</h3>",
                _score_table_html(table),
                f"<figure>{profile_band_figure(table, colours)}</figure>",
            ]
        parts.append("</section>")
    return "\n".join(parts)


def claims_section(directory: str | Path) -> str:
    """The claims page: per claim its statement, test, figure and verdict, from ``optarena claims --out DIR``."""
    directory = Path(directory)
    verdicts = sorted(directory.glob("*/verdict.json"))
    if not verdicts:
        raise ValueError(f"no claims in {str(directory)!r}: run `optarena claims --out {directory}` first")
    parts = [
        "<section id='claims'>",
        "<h2>Claims</h2>",
        "<table class='claims'><tr><th>claim</th><th>verdict</th><th>evidence</th></tr>",
    ]
    results = [json.loads(path.read_text()) for path in verdicts]
    for r in results:
        parts.append(
            f"<tr><td class='name'><a href='#claim-{escape(r['name'])}'>{escape(r['name'])}</a></td>"
            f"<td><b>{escape(r['verdict']['verdict'])}</b></td><td>{escape(r['verdict']['evidence'])}</td></tr>"
        )
    parts.append("</table>")
    for r in results:
        image = directory / r["figure"]
        encoded = base64.b64encode(image.read_bytes()).decode() if image.is_file() else ""
        parts += [
            f"<h3 id='claim-{escape(r['name'])}'>{escape(r['title'])}</h3>",
            f"<p class='meta'>{escape(r['statement'])} ({escape(r['paper'])})</p>",
            f"<p class='note'><i>{escape(r['test'])}</i></p>",
            (
                f"<figure><img alt='{escape(r['name'])}' style='max-width:100%' "
                f"src='data:image/png;base64,{encoded}'></figure>"
                if encoded
                else ""
            ),
            f"<p><b>Verdict: {escape(r['verdict']['verdict'])}.</b> {escape(r['verdict']['evidence'])}</p>",
        ]
    parts.append("</section>")
    return "\n".join(parts)

"""A claim from the literature, tested through the arena: its study, its figure and its verdict.

Each claim states its test in its docstring *before* any run: which runs, which number
is computed, and the thresholds that give each verdict:

- ``holds``: the number is on the claim's side by the stated margin;
- ``does not hold at this scale``: it is on the other side (CPU-sized models and budgets;
  the paper's scale may differ);
- ``inconclusive``: in between, or the runs cannot decide (e.g. nothing reached the target).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optarena.arena.store import Store
from optarena.claims.runner import GridStudy, run_grid

VERDICTS = ("holds", "does not hold at this scale", "inconclusive")


@dataclass
class Verdict:
    claim: str
    verdict: str
    evidence: str
    """The measured numbers and the rule they met, in one or two sentences."""
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


class Claim:
    """One claim: ``studies(quick)`` to run, ``judge`` to decide, ``figure`` to draw."""

    name: str
    title: str
    statement: str
    paper: str
    figure_caption: str

    def studies(self, quick: bool) -> list[GridStudy]:  # pragma: no cover - interface
        raise NotImplementedError

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:  # pragma: no cover - interface
        raise NotImplementedError

    def figure(self, store: Store, studies: list[GridStudy]) -> Any:  # pragma: no cover - interface
        """A matplotlib Figure."""
        raise NotImplementedError

    @classmethod
    def test(cls) -> str:
        """The test stated in advance: the docstring's paragraph that starts with "Test"."""
        doc = (cls.__doc__ or "").strip()
        paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
        return next((p for p in paragraphs if p.startswith("Test")), "")


@dataclass
class ClaimResult:
    name: str
    title: str
    statement: str
    paper: str
    test: str
    verdict: Verdict
    figure: str
    """The figure's file name, relative to the output directory."""
    trials: int
    ran: int
    seconds: float


def run_claim(claim: Claim, out: Path, executor: Any, quick: bool) -> ClaimResult:
    """Run ``claim``'s study into ``out/NAME/runs.sqlite``, draw its figure and judge it."""
    import time

    folder = out / claim.name
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    studies = claim.studies(quick)
    with Store(folder / "runs.sqlite") as store:
        outcome = run_grid(studies, store, executor)
        verdict = claim.judge(store, studies)
        figure = claim.figure(store, studies)
    image = folder / "figure.png"
    partial = folder / "figure.png.partial"
    figure.savefig(partial, format="png", dpi=110, bbox_inches="tight")
    partial.replace(image)
    result = ClaimResult(
        claim.name,
        claim.title,
        claim.statement,
        claim.paper,
        claim.test(),
        verdict,
        f"{claim.name}/figure.png",
        sum(s.planned_trials for s in studies),
        outcome.ran,
        time.perf_counter() - started,
    )
    (folder / "verdict.json").write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    return result


def claims_page(results: list[ClaimResult], command: str, seconds: float) -> str:
    """The claims page in Markdown: per claim its statement, test, figure and verdict."""
    lines = [
        "# Claims",
        "",
        f"`{command}`: {len(results)} claims in {seconds / 60:.1f} min.",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
    ]
    for r in results:
        lines.append(f"| [{r.name}](#{r.name}) | **{r.verdict.verdict}** | {r.verdict.evidence} |")
    for r in results:
        lines += [
            "",
            f"## {r.name}",
            "",
            f"**{r.title}.** {r.statement} ({r.paper})",
            "",
            f"*{r.test}*",
            "",
            f"![{r.name}]({r.figure})",
            "",
            f"**Verdict: {r.verdict.verdict}.** {r.verdict.evidence} "
            f"({r.trials} runs, {r.ran} run now, {r.seconds:.0f} s.)",
        ]
    return "\n".join(lines) + "\n"

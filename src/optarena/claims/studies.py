"""The seeds' six claims, each a study through the arena with its test stated in advance."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from optarena.arena.store import Store
from optarena.claims.base import Claim, Verdict
from optarena.claims.runner import GridStudy, Run, by_setting, mean_final, plan_workload, runs

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def _figure(columns: int = 1, width: float = 6.0) -> tuple[Figure, list[Any]]:
    figure = Figure(figsize=(width * columns, 3.8), layout="constrained")
    return figure, list(np.atleast_1d(figure.subplots(1, columns)))


def _lr_curve(store: Store, study: GridStudy, worst: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per learning rate of the grid: ``(lr, mean, low, high)`` of the final value over seeds."""
    rows = []
    for setting, group in by_setting(runs(store, study)):
        values = [mean_final([r], worst) for r in group]
        rows.append((setting["lr"], statistics.fmean(values), min(values), max(values)))
    rows.sort()
    return tuple(np.asarray(c, dtype=float) for c in zip(*rows))  # type: ignore[return-value]


def _seed_std(store: Store, study: GridStudy, worst: float) -> np.ndarray:
    return np.asarray(
        [
            statistics.pstdev([mean_final([r], worst) for r in group])
            for _, group in sorted(by_setting(runs(store, study)), key=lambda g: g[0]["lr"])
        ]
    )


def _mean_curve(group: list[Run]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The target metric against steps: mean, lowest and highest over the seeds."""
    steps = sorted({s for r in group for s, _ in r.curve})
    table = np.full((len(group), len(steps)), np.nan)
    for i, r in enumerate(group):
        for s, v in r.curve:
            table[i, steps.index(s)] = v
    return np.asarray(steps), np.nanmean(table, 0), np.nanmin(table, 0), np.nanmax(table, 0)


def _best_group(store: Store, study: GridStudy, worst: float, mode: str = "max") -> tuple[dict[str, Any], list[Run]]:
    """The setting with the best mean final value, and its runs."""
    groups = by_setting(runs(store, study))
    sign = 1 if mode == "max" else -1
    return max(groups, key=lambda g: sign * mean_final(g[1], worst))


# -- RAdam ----------------------------------------------------------------------------------------


class RAdamRobustness(Claim):
    """RAdam is robust to the learning rate and needs no warm-up (Liu et al. 2019).

    Study: ``tiny-transformer`` (post-LN blocks, no warm-up; 300 steps, quick 150).
    Adam, Adam with a linear warm-up over the first 10% of steps, and RAdam, each at every
    learning rate of a log grid (1e-4 to 1e-1 in half decades; quick: 1e-3, 1e-2, 1e-1),
    on seeds 1-2 (quick: seed 1). Value: mean final token accuracy over seeds.

    Test: a learning rate is *good* for a method when its value is at least 90% of the
    best value of any method at any rate; *width* is the number of good rates. Holds if
    RAdam's width exceeds Adam's (without warm-up) and RAdam's best value is within 0.05
    of Adam-with-warm-up's best. Does not hold at this scale if RAdam's width is below
    Adam's, or its best value is more than 0.1 below Adam-with-warm-up's. Otherwise
    inconclusive.
    """

    name = "radam"
    title = "RAdam needs no warm-up and forgives the learning rate"
    statement = "RAdam's variance rectification makes Adam robust to the learning rate without a warm-up."
    paper = "Liu et al. 2019, https://arxiv.org/abs/1908.03265"
    arms = (("Adam", "adam", False), ("Adam + warm-up", "adam", True), ("RAdam", "radam", False))

    def studies(self, quick: bool) -> list[GridStudy]:
        planned = plan_workload("tiny-transformer", {"quick": True} if quick else {})
        lrs = [1e-3, 1e-2, 1e-1] if quick else [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
        seeds = [1] if quick else [1, 2]
        warmup = planned.workload.steps // 10
        return [
            GridStudy(
                self.name,
                label,
                planned,
                optimizer,
                [{"lr": lr, **({"warmup_steps": warmup} if extra else {})} for lr in lrs],
                seeds,
            )
            for label, optimizer, extra in self.arms
        ]

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        curves = {s.label: _lr_curve(store, s, 0.0) for s in studies}
        best_any = max(float(c[1].max()) for c in curves.values())
        width = {label: int((c[1] >= 0.9 * best_any).sum()) for label, c in curves.items()}
        best = {label: float(c[1].max()) for label, c in curves.items()}
        numbers = {"width": width, "best": best, "rates": len(curves["Adam"][0])}
        evidence = (
            f"good learning rates (>= 90% of the best, {0.9 * best_any:.3f}) out of {numbers['rates']}: "
            + ", ".join(f"{k} {v}" for k, v in width.items())
            + "; best token accuracy: "
            + ", ".join(f"{k} {v:.3f}" for k, v in best.items())
            + "."
        )
        if width["RAdam"] > width["Adam"] and best["RAdam"] >= best["Adam + warm-up"] - 0.05:
            verdict = "holds"
        elif width["RAdam"] < width["Adam"] or best["RAdam"] < best["Adam + warm-up"] - 0.1:
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, numbers)

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, (axes,) = _figure()
        for colour, study in zip(COLOURS, studies):
            lr, mean, low, high = _lr_curve(store, study, 0.0)
            axes.plot(lr, mean, marker="o", color=colour, label=study.label)
            axes.fill_between(lr, low, high, color=colour, alpha=0.15, lw=0)
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("final token accuracy")
        axes.set_title("tiny-transformer, post-LN, no warm-up")
        axes.legend(frameon=False)
        return figure


# -- AdamW ----------------------------------------------------------------------------------------


def _slope(lrs: list[float], wds: list[float]) -> float:
    x, y = np.log10(lrs), np.log10(wds)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0
    return float(np.polyfit(x, y, 1)[0])


class AdamWDecoupling(Claim):
    """AdamW's decoupled weight decay separates the best weight decay from the learning rate (Loshchilov & Hutter).

    Study: ``mnist1d-mlp`` (quick budget, 400 steps, where the MLP overfits its 4,000
    examples). Adam with L2 regularisation (``adam`` with ``weight_decay``) and AdamW, each
    on a grid of learning rates (1e-3 to 3e-2 in half decades; quick: 1e-3, 1e-2) times
    weight decays (Adam-L2: 1e-5 to 1e-2; AdamW: 1e-3 to 1, as torch's AdamW multiplies
    its decay by the learning rate), on seeds 1-2 (quick: seed 1). Value: mean final test
    accuracy.

    Test: for each learning rate take the best weight decay; fit log10(best decay) against
    log10(learning rate) by least squares. Holds if AdamW's slope is smaller in magnitude
    than Adam-L2's by at least 0.25. Does not hold at this scale if it is not smaller at
    all. Inconclusive otherwise, and whenever weight decay moves the best accuracy of
    either method by less than 0.01 (decay does not matter here).
    """

    name = "adamw"
    title = "AdamW decouples the best weight decay from the learning rate"
    statement = "With decoupled weight decay the best decay no longer depends on the learning rate."
    paper = "Loshchilov & Hutter 2017, https://arxiv.org/abs/1711.05101"

    def _grid(self, quick: bool) -> tuple[list[float], dict[str, list[float]]]:
        lrs = [1e-3, 1e-2] if quick else [1e-3, 3e-3, 1e-2, 3e-2]
        decays = {
            "Adam-L2": [1e-5, 1e-3] if quick else [1e-5, 1e-4, 1e-3, 1e-2],
            "AdamW": [1e-3, 1e-1] if quick else [1e-3, 1e-2, 1e-1, 1.0],
        }
        return lrs, decays

    def studies(self, quick: bool) -> list[GridStudy]:
        planned = plan_workload("mnist1d-mlp", {"quick": True})
        lrs, decays = self._grid(quick)
        seeds = [1] if quick else [1, 2]
        return [
            GridStudy(
                self.name,
                label,
                planned,
                optimizer,
                [{"lr": lr, "weight_decay": wd} for lr in lrs for wd in decays[label]],
                seeds,
            )
            for label, optimizer in (("Adam-L2", "adam"), ("AdamW", "adamw"))
        ]

    def _table(self, store: Store, study: GridStudy) -> tuple[list[float], list[float], np.ndarray]:
        groups = by_setting(runs(store, study))
        lrs = sorted({s["lr"] for s, _ in groups})
        wds = sorted({s["weight_decay"] for s, _ in groups})
        table = np.full((len(lrs), len(wds)), np.nan)
        for setting, group in groups:
            table[lrs.index(setting["lr"]), wds.index(setting["weight_decay"])] = mean_final(group, 0.0)
        return lrs, wds, table

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        slopes, effect = {}, {}
        for study in studies:
            lrs, wds, table = self._table(store, study)
            best = [wds[int(np.argmax(row))] for row in table]
            slopes[study.label] = _slope(lrs, best)
            effect[study.label] = float(np.max(np.ptp(table, axis=1)))
        evidence = (
            "slope of log(best decay) on log(learning rate): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in slopes.items())
            + "; largest accuracy change across decays at one rate: "
            + ", ".join(f"{k} {v:.3f}" for k, v in effect.items())
            + "."
        )
        numbers = {"slope": slopes, "decay_effect": effect}
        if min(effect.values()) < 0.01:
            verdict = "inconclusive"
        elif abs(slopes["AdamW"]) <= abs(slopes["Adam-L2"]) - 0.25:
            verdict = "holds"
        elif abs(slopes["AdamW"]) >= abs(slopes["Adam-L2"]):
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, numbers)

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, axes = _figure(2, 4.6)
        tables = [self._table(store, s) for s in studies]
        low = min(float(np.nanmin(t[2])) for t in tables)
        high = max(float(np.nanmax(t[2])) for t in tables)
        for ax, study, (lrs, wds, table) in zip(axes, studies, tables):
            image = ax.imshow(table.T, origin="lower", cmap="viridis", vmin=low, vmax=high, aspect="auto")
            ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
            ax.set_yticks(range(len(wds)), [f"{v:g}" for v in wds])
            for i, row in enumerate(table):
                ax.plot(i, int(np.argmax(row)), marker="*", color="white", ms=12)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("weight decay")
            ax.set_title(f"{study.label}: final test accuracy (star: best decay)", fontsize=9)
        figure.colorbar(image, ax=axes, shrink=0.9)
        return figure


# -- Lookahead ------------------------------------------------------------------------------------


class LookaheadRobustness(Claim):
    """Lookahead reduces variance and is robust to its inner optimizer's settings (Zhang et al. 2019).

    Study: ``mnist1d-mlp`` (quick budget, 400 steps). Adam and Lookahead around Adam
    (k = 5, alpha = 0.5) at every learning rate of a log grid (1e-4 to 3e-2 in half decades;
    quick: 1e-3, 1e-2, 1e-1), on seeds 1-3 (quick: 1-2). Values per learning rate: mean
    final test accuracy over seeds, and its standard deviation over seeds.

    Test: robustness is the mean over the grid of the mean final accuracy (the area under
    the accuracy-learning-rate curve); variance is the mean over the grid of the standard
    deviation over seeds. Holds if Lookahead's robustness is at least Adam's and its
    variance at most Adam's. Does not hold at this scale if its robustness is more than
    0.01 below Adam's and its variance above Adam's. Otherwise inconclusive.
    """

    name = "lookahead"
    title = "Lookahead lowers variance and forgives its inner optimizer's learning rate"
    statement = "Lookahead's slow weights reduce the variance of training and make it robust to the inner settings."
    paper = "Zhang, Lucas, Hinton & Ba 2019, https://arxiv.org/abs/1907.08610"

    def studies(self, quick: bool) -> list[GridStudy]:
        planned = plan_workload("mnist1d-mlp", {"quick": True})
        lrs = [1e-3, 1e-2, 1e-1] if quick else [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
        seeds = [1, 2] if quick else [1, 2, 3]
        return [
            GridStudy(self.name, "Adam", planned, "adam", [{"lr": lr} for lr in lrs], seeds),
            GridStudy(
                self.name,
                "Lookahead(Adam)",
                planned,
                "lookahead",
                [{"lr": lr, "k": 5, "alpha": 0.5} for lr in lrs],
                seeds,
            ),
        ]

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        robust = {s.label: float(_lr_curve(store, s, 0.0)[1].mean()) for s in studies}
        spread = {s.label: float(_seed_std(store, s, 0.0).mean()) for s in studies}
        a, la = "Adam", "Lookahead(Adam)"
        evidence = (
            "mean final accuracy over the learning-rate grid: "
            + ", ".join(f"{k} {v:.3f}" for k, v in robust.items())
            + "; mean standard deviation over seeds: "
            + ", ".join(f"{k} {v:.4f}" for k, v in spread.items())
            + "."
        )
        if robust[la] >= robust[a] and spread[la] <= spread[a]:
            verdict = "holds"
        elif robust[la] < robust[a] - 0.01 and spread[la] > spread[a]:
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, {"robustness": robust, "seed_std": spread})

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, (left, right) = _figure(2, 4.6)
        for colour, study in zip(COLOURS, studies):
            lr, mean, low, high = _lr_curve(store, study, 0.0)
            left.plot(lr, mean, marker="o", color=colour, label=study.label)
            left.fill_between(lr, low, high, color=colour, alpha=0.15, lw=0)
            right.plot(lr, _seed_std(store, study, 0.0), marker="o", color=colour, label=study.label)
        for ax, label in ((left, "final test accuracy (band: seeds)"), (right, "std over seeds")):
            ax.set_xscale("log")
            ax.set_xlabel("(inner) learning rate")
            ax.set_ylabel(label)
        left.legend(frameon=False)
        left.set_title("mnist1d-mlp", fontsize=10)
        return figure


# -- LAMB -----------------------------------------------------------------------------------------


class LambScaling(Claim):
    """LAMB keeps scaling with batch size where Adam stops (You et al. 2019).

    Study: ``large-batch`` (target test accuracy 0.84). Heavy-ball momentum, Adam, LARS
    and LAMB at batch sizes 256, 1024 and 4096 (quick: 1024 and 4096), each on the same
    number of examples (300 steps at 4096, quick 150, and proportionally more steps at
    smaller batches, evaluated as often per example), at three learning rates around its
    usual value scaled with the square root of the batch size (quick: two), on seed 1.
    Value per (optimizer, batch size): the fewest steps to the target over the learning
    rates (infinite when none reached it).

    Test: an optimizer's speed-up is its steps at the smallest batch over its steps at the
    largest. Holds if LAMB reaches the target at both ends and its speed-up is at least
    1.25 times Adam's (or Adam misses the target at the largest batch while LAMB reaches
    it). Does not hold at this scale if LAMB's speed-up is at most Adam's. Inconclusive
    otherwise, and when LAMB misses the target at the smallest batch.
    """

    name = "lamb"
    title = "LAMB scales with the batch size where Adam stops"
    statement = "Layer-wise trust ratios let LAMB cut the steps to a target as the batch grows, beyond Adam."
    paper = "You et al. 2019, https://arxiv.org/abs/1904.00962"
    base_lrs = (("momentum", "momentum", 0.5), ("Adam", "adam", 1e-2), ("LARS", "lars", 10.0), ("LAMB", "lamb", 1e-2))

    def _batches(self, quick: bool) -> list[int]:
        return [1024, 4096] if quick else [256, 1024, 4096]

    def studies(self, quick: bool) -> list[GridStudy]:
        studies = []
        factors = (0.5, 2.0) if quick else (1 / 3, 1.0, 3.0)
        for batch in self._batches(quick):
            scale = 4096 // batch
            options = {"batch_size": batch, "steps": (150 if quick else 300) * scale, "eval_every": 10 * scale}
            planned = plan_workload("large-batch", options)
            for label, optimizer, lr in self.base_lrs:
                scaled = lr * math.sqrt(batch / 4096)
                studies.append(
                    GridStudy(
                        self.name, f"{label} b{batch}", planned, optimizer, [{"lr": scaled * f} for f in factors], [1]
                    )
                )
        return studies

    def _steps(self, store: Store, studies: list[GridStudy]) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for study in studies:
            label, batch = study.label.rsplit(" b", 1)
            reached = [r.steps_to_target for r in runs(store, study) if r.steps_to_target is not None]
            out.setdefault(label, {})[int(batch)] = float(min(reached)) if reached else math.inf
        return out

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        steps = self._steps(store, studies)
        small, large = min(steps["LAMB"]), max(steps["LAMB"])
        speedup = {k: (v[small] / v[large] if math.isfinite(v[large]) else 0.0) for k, v in steps.items()}
        evidence = (
            f"steps to 0.84 at batch {small} / {large}: "
            + ", ".join(f"{k} {_fmt(v[small])} / {_fmt(v[large])}" for k, v in steps.items())
            + "; speed-up: "
            + ", ".join(f"{k} {v:.2f}x" for k, v in speedup.items())
            + "."
        )
        lamb, adam = steps["LAMB"], steps["Adam"]
        if not math.isfinite(lamb[small]):
            verdict = "inconclusive"
        elif math.isfinite(lamb[large]) and (
            speedup["LAMB"] >= 1.25 * speedup["Adam"] or not math.isfinite(adam[large])
        ):
            verdict = "holds"
        elif speedup["LAMB"] <= speedup["Adam"]:
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, {"steps": steps, "speedup": speedup})

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, (axes,) = _figure()
        steps = self._steps(store, studies)
        batches = sorted({b for per in steps.values() for b in per})
        finite = [v for per in steps.values() for v in per.values() if math.isfinite(v)]
        top = 2 * max(finite) if finite else 1000.0
        for colour, (label, per) in zip(COLOURS, steps.items()):
            values = [per[b] for b in batches]
            axes.plot(
                batches, [v if math.isfinite(v) else np.nan for v in values], marker="o", color=colour, label=label
            )
            missed = [b for b, v in zip(batches, values) if not math.isfinite(v)]
            axes.plot(missed, [top] * len(missed), marker="x", ms=8, lw=0, color=colour)
        at_largest = [per[batches[-1]] for per in steps.values() if math.isfinite(per[batches[-1]])]
        if at_largest:
            anchor = min(at_largest)
            axes.plot(
                batches,
                [anchor * batches[-1] / b for b in batches],
                ls="--",
                color="0.5",
                label="perfect scaling (from the fastest at the largest batch)",
            )
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("batch size (equal examples per run)")
        axes.set_ylabel("steps to test accuracy 0.84 (x at the top: never)")
        axes.set_title("large-batch", fontsize=10)
        axes.legend(frameon=False, fontsize=8)
        return figure


def _fmt(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{value:g}"


# -- AdaBound -------------------------------------------------------------------------------------


class AdaBoundTransition(Claim):
    """AdaBound is fast early like Adam and ends like SGD (Luo et al. 2019).

    Study: ``mnist1d-cnn`` (quick budget, 400 steps). Adam, heavy-ball momentum SGD and
    AdaBound (final_lr 0.1), each at three learning rates (quick: two), on seeds 1-2
    (quick: seed 1); each method is represented by its learning rate with the best mean
    final test accuracy. Values: mean test accuracy at the evaluation a quarter into the
    run (*early*) and at the end (*final*).

    Test: holds if AdaBound's early accuracy is above SGD's and at least Adam's minus 0.03,
    and its final accuracy is at least SGD's minus 0.01. Does not hold at this scale if its
    early accuracy is more than 0.02 below SGD's, or its final accuracy is more than 0.02
    below both others'. Otherwise inconclusive.
    """

    name = "adabound"
    title = "AdaBound starts like Adam and ends like SGD"
    statement = "Dynamic bounds on Adam's step sizes move it smoothly from Adam to SGD."
    paper = "Luo, Xiong, Liu & Sun 2019, https://arxiv.org/abs/1902.09843"
    arms = (
        ("Adam", "adam", (1e-3, 3e-3, 1e-2)),
        ("SGD momentum", "momentum", (0.01, 0.03, 0.1)),
        ("AdaBound", "adabound", (1e-3, 3e-3, 1e-2)),
    )

    def studies(self, quick: bool) -> list[GridStudy]:
        planned = plan_workload("mnist1d-cnn", {"quick": True})
        seeds = [1] if quick else [1, 2]
        return [
            GridStudy(self.name, label, planned, optimizer, [{"lr": lr} for lr in (lrs[1:] if quick else lrs)], seeds)
            for label, optimizer, lrs in self.arms
        ]

    def _curves(self, store: Store, studies: list[GridStudy]) -> dict[str, tuple[Any, ...]]:
        return {
            s.label: (*_mean_curve(_best_group(store, s, 0.0)[1]), _best_group(store, s, 0.0)[0]["lr"]) for s in studies
        }

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        curves = self._curves(store, studies)
        early, final = {}, {}
        for label, (steps, mean, _, _, _) in curves.items():
            quarter = int(np.argmin(np.abs(steps - steps[-1] / 4)))
            early[label], final[label] = float(mean[quarter]), float(mean[-1])
        a, s, b = early["Adam"], early["SGD momentum"], early["AdaBound"]
        fa, fs, fb = final["Adam"], final["SGD momentum"], final["AdaBound"]
        evidence = (
            "early accuracy: "
            + ", ".join(f"{k} {v:.3f}" for k, v in early.items())
            + "; final: "
            + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
            + "."
        )
        if b > s and b >= a - 0.03 and fb >= fs - 0.01:
            verdict = "holds"
        elif b < s - 0.02 or fb < min(fa, fs) - 0.02:
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, {"early": early, "final": final})

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, (axes,) = _figure()
        for colour, (label, (steps, mean, low, high, lr)) in zip(COLOURS, self._curves(store, studies).items()):
            axes.plot(steps, mean, color=colour, label=f"{label} (lr {lr:g})")
            axes.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
        axes.set_xlabel("step")
        axes.set_ylabel("test accuracy")
        axes.set_title("mnist1d-cnn", fontsize=10)
        axes.legend(frameon=False)
        return figure


# -- one-cycle ------------------------------------------------------------------------------------


class OneCycle(Claim):
    """A one-cycle schedule reaches the target in a fraction of the steps of a constant rate (Smith 2018).

    Study: ``mnist1d-cnn`` with heavy-ball momentum SGD. A constant learning rate (0.01,
    0.03, 0.1; quick: 0.03, 0.1) over the full budget of N = 1,000 steps (quick: 400), and
    one-cycle schedules (torch's OneCycleLR, peak 0.1 or 0.3; quick: 0.3) over budgets of
    N/4 and N/2 steps, on seeds 1-2 (quick: seed 1). Values: the best constant rate's mean
    final test accuracy A, and each one-cycle run's mean final accuracy.

    Test: holds if a one-cycle schedule of at most N/2 steps ends at A - 0.005 or better.
    Does not hold at this scale if no one-cycle schedule of N/2 steps gets within 0.03 of
    A. Otherwise inconclusive.
    """

    name = "one-cycle"
    title = "Super-convergence: one cycle reaches the target in a fraction of the steps"
    statement = "A one-cycle learning rate schedule reaches a constant rate's accuracy in far fewer steps."
    paper = "Smith & Topin 2018, https://arxiv.org/abs/1708.07120"

    def _budget(self, quick: bool) -> int:
        return 400 if quick else 1000

    def studies(self, quick: bool) -> list[GridStudy]:
        n = self._budget(quick)
        seeds = [1] if quick else [1, 2]
        constant = GridStudy(
            self.name,
            f"constant {n}",
            plan_workload("mnist1d-cnn", {"steps": n}),
            "momentum",
            [{"lr": lr} for lr in ((0.03, 0.1) if quick else (0.01, 0.03, 0.1))],
            seeds,
        )
        cycles = [
            GridStudy(
                self.name,
                f"one-cycle {n // d}",
                plan_workload("mnist1d-cnn", {"steps": n // d}),
                "momentum",
                [{"lr": lr, "one_cycle": True} for lr in ((0.3,) if quick else (0.1, 0.3))],
                seeds,
            )
            for d in (4, 2)
        ]
        return [constant, *cycles]

    def judge(self, store: Store, studies: list[GridStudy]) -> Verdict:
        constant, *cycles = studies
        n = int(constant.label.split()[-1])
        reference = mean_final(_best_group(store, constant, 0.0)[1], 0.0)
        ends = {int(s.label.split()[-1]): mean_final(_best_group(store, s, 0.0)[1], 0.0) for s in cycles}
        evidence = (
            f"constant rate, {n} steps: {reference:.3f}; one cycle: "
            + ", ".join(f"{steps} steps {value:.3f}" for steps, value in sorted(ends.items()))
            + "."
        )
        if any(value >= reference - 0.005 for steps, value in ends.items() if steps <= n // 2):
            verdict = "holds"
        elif ends.get(n // 2, 0.0) < reference - 0.03:
            verdict = "does not hold at this scale"
        else:
            verdict = "inconclusive"
        return Verdict(self.name, verdict, evidence, {"constant": reference, "one_cycle": ends})

    def figure(self, store: Store, studies: list[GridStudy]) -> Figure:
        figure, (axes,) = _figure()
        for colour, study in zip(COLOURS, studies):
            setting, group = _best_group(store, study, 0.0)
            steps, mean, low, high = _mean_curve(group)
            axes.plot(steps, mean, color=colour, label=f"{study.label} steps (lr {setting['lr']:g})")
            axes.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
            axes.plot(steps[-1], mean[-1], marker="o", color=colour)
        axes.set_xlabel("step")
        axes.set_ylabel("test accuracy")
        axes.set_title("mnist1d-cnn, SGD with momentum", fontsize=10)
        axes.legend(frameon=False)
        return figure


CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in (
        RAdamRobustness(),
        AdamWDecoupling(),
        LookaheadRobustness(),
        LambScaling(),
        AdaBoundTransition(),
        OneCycle(),
    )
}
"""Every claim by name, in the order the seeds list them."""

"""Optimizer signals: named per-tensor quantities recorded at a chosen interval."""

from __future__ import annotations

import math

import pytest
import torch
from optimizer_table import CASES

import optarena
from optarena.optim import chunks

SHAPES = [(6, 4), (5,), (3, 2)]


def params(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape, generator=g, dtype=dtype)) for shape in SHAPES]


def grads(ps, step):
    for i, p in enumerate(ps):
        p.grad = torch.sin(1.3 * p.detach() + 0.7 * step + i) + 0.1 * p.detach()


SIGNALS = {
    "lamb": {"trust_ratio"},
    "lars": {"trust_ratio"},
    "rangerlars": {"trust_ratio", "rectification", "lookahead_distance"},
    "radam": {"rectification"},
    "ranger": {"rectification", "lookahead_distance"},
    "adabound": {"lower_bound", "upper_bound"},
    "amsbound": {"lower_bound", "upper_bound"},
    "over9000": {"trust_ratio", "rectification", "lookahead_distance"},
    "adafactor": {"relative_step", "step_size", "update_rms", "clip_scale"},
    "muon": {"update_rms"},
    "muon_adamw": {"update_rms"},
}
SIGNAL_TENSORS = {"muon_adamw": 2}
"""Where a signal's chain steps some tensors only: MuonWithAdamW's ``update_rms`` is Muon's, for
the two matrices (AdamW steps the vector)."""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_optimizer_reports_its_signals(case):
    ps = params()
    opt = case.create(ps, **case.configs[0], fused=False)
    opt.record_signals(1)
    for step in range(case.sync_period or 6):  # the last step synchronises Lookahead's weights
        grads(ps, step)
        opt.step()
    expected = SIGNALS.get(case.name, set()) | ({"lookahead_distance"} if case.name == "lookahead" else set())
    assert set(opt.signals) == expected
    for values in opt.signals.values():
        assert len(values) == SIGNAL_TENSORS.get(case.name, len(SHAPES)) and all(
            math.isfinite(v) for v in values.values()
        )


def test_signals_are_off_by_default_and_cost_no_operation(monkeypatch):
    """Off, no transform computes anything for signals (here: Adafactor's copies of its RMS)."""
    from optarena.transforms.ops import ForeachOps

    clones = []
    original = ForeachOps.clone
    monkeypatch.setattr(ForeachOps, "clone", lambda self, xs: clones.append(1) or original(self, xs))

    def run(recording: bool) -> dict:
        clones.clear()
        ps = params()
        opt = optarena.Adafactor(ps, fused=False)
        if recording:
            opt.record_signals(1)
        for step in range(3):
            grads(ps, step)
            opt.step()
        return opt.signals

    assert run(False) == {} and not clones
    assert run(True) and clones


def test_trust_ratio_and_rectification_are_the_formulas():
    ps = params()
    lamb = optarena.LAMB(ps, weight_decay=0.0)
    lamb.record_signals(1)
    grads(ps, 0)
    before = [p.detach().clone() for p in ps]
    lamb.step()
    for i, (p, b) in enumerate(zip(ps, before)):
        eps = lamb.param_groups[0]["eps"]
        adam_direction = p.grad / (p.grad.abs() + eps)  # Adam's first step: m_hat / (sqrt(v_hat) + eps)
        expected = float(b.norm() / adam_direction.norm())
        assert lamb.signals["trust_ratio"][f"param_groups[0]['params'][{i}]"] == pytest.approx(expected, rel=1e-12)

    radam = optarena.RAdam(params())
    radam.record_signals(1)
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1
    for step in range(1, 8):
        grads(radam.param_groups[0]["params"], step)
        radam.step()
        rho = rho_inf - 2 * step * beta2**step / (1 - beta2**step)
        expected = (
            0.0 if rho <= 5 else math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        )
        assert list(radam.signals["rectification"].values()) == [pytest.approx(expected, abs=1e-15)] * len(SHAPES)


@pytest.mark.parametrize("name", ["lamb", "adafactor", "ranger", "adabound"])
def test_compiled_signals_equal_eager_ones(monkeypatch, name):
    monkeypatch.setattr(chunks, "CHUNK", 2)
    monkeypatch.setattr(chunks, "SHAPED_CHUNK", 2)
    runs = []
    for fused in (True, False):
        ps = params()
        opt = optarena.create(name, ps, fused=fused, **({"k": 2} if name == "ranger" else {}))
        opt.record_signals(1)
        for step in range(4):
            grads(ps, step)
            opt.step()
        runs.append(opt.signals)
    compiled, eager = runs
    assert compiled.keys() == eager.keys()
    for signal in eager:
        for label, value in eager[signal].items():
            assert compiled[signal][label] == pytest.approx(value, rel=1e-10, abs=1e-15), (signal, label)


def test_signals_follow_the_interval():
    ps = params()
    opt = optarena.RAdam(ps)
    opt.record_signals(3)
    seen = []
    for step in range(1, 7):
        grads(ps, step)
        opt.step()
        seen.append(dict(opt.signals.get("rectification", {})))
    # recorded at steps 3 and 6 only; kept until the next recording step
    assert seen[0] == seen[1] == {} and seen[2] == seen[3] == seen[4] and seen[5] != seen[2]
    opt.record_signals(0)
    grads(ps, 9)
    opt.step()
    assert opt.signals["rectification"] == seen[5]  # nothing recorded since


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_a_bad_interval_is_refused(bad):
    with pytest.raises(ValueError, match="every must be an integer >= 0"):
        optarena.Adam(params()).record_signals(bad)


def test_named_parameters_label_the_signals():
    model = torch.nn.Linear(3, 2).double()
    opt = optarena.LAMB(model.named_parameters())
    opt.record_signals(1)
    model(torch.ones(4, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    assert set(opt.signals["trust_ratio"]) == {"weight", "bias"}


def test_lookahead_wrapper_reports_its_distance_and_the_inner_signals():
    ps = params()
    opt = optarena.Lookahead(optarena.Adam(ps), k=2)
    opt.record_signals(2)
    for step in range(2):
        grads(ps, step)
        opt.step()
    distances = opt.signals["lookahead_distance"]
    assert set(distances) == {f"param_groups[0]['params'][{i}]" for i in range(3)}
    assert all(d > 0 for d in distances.values())


def test_unnamed_parameters_are_labelled_by_their_position_in_their_group():
    """Labels follow each tensor's place in its group, whatever the buckets' order (Adafactor
    steps matrices and vectors apart) and with tensors that have no gradient left out."""
    g = torch.Generator().manual_seed(1)
    shapes = [[(5,), (6, 4), (3,), (3, 2)], [(4,), (2, 3), (7,)]]
    groups = [[torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in group] for group in shapes]
    stepped = {(0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2)}  # groups[1][0] gets no gradient
    before = {(i, j): groups[i][j].detach().clone() for i, j in stepped}
    for i, j in stepped:
        groups[i][j].grad = torch.randn(groups[i][j].shape, generator=g, dtype=torch.float64)
    opt = optarena.Adafactor([{"params": groups[0]}, {"params": groups[1]}], fused=False)
    opt.record_signals(1)
    opt.step()
    # at the first step alpha = rho max(eps2, RMS(theta)) with rho = 1e-2: distinct per tensor
    expected = {
        f"param_groups[{i}]['params'][{j}]": 1e-2 * max(1e-3, float(before[i, j].pow(2).mean().sqrt()))
        for i, j in stepped
    }
    assert opt.signals["step_size"] == pytest.approx(expected, rel=1e-12)

"""Print each optimizer's measured deviation from its reference: the figures of docs/fidelity.md.

For every row of the test table that has a reference and every configuration of the row,
both are run for 100 steps in float64 on the reference test's parameters and gradients
(tests/test_reference_torch.py: five shapes, one of them empty, one parameter without a
gradient every third step), and the largest relative error over the parameters is printed:
``max |ours - theirs| / max |theirs|`` per tensor, the worst tensor.

    python tools/reference_deviations.py            # every row
    python tools/reference_deviations.py ranger     # rows whose name is given
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from optimizer_table import CASES  # noqa: E402
from test_reference_torch import params_for, relative_error, run  # noqa: E402


def main(names: list[str]) -> None:
    torch.set_default_dtype(torch.float64)
    print("| optimizer | config | reference | max relative error, 100 steps |")
    print("|---|---|---|---|")
    for case in CASES:
        if case.reference is None or (names and case.name not in names):
            continue
        for config in case.configs:
            ours, theirs = params_for(0), params_for(0)
            run(lambda p, case=case, config=config: case.create(p, **config), ours, 100)
            run(lambda p, case=case, config=config: case.reference(p, **config), theirs, 100)
            shown = ", ".join(f"{k}={v!r}" for k, v in config.items()) or "defaults"
            print(f"| {case.name} | {shown} | {case.reference_name} | {relative_error(ours, theirs):.1e} |")


if __name__ == "__main__":
    main(sys.argv[1:])

"""README.md leads with two working commands, and .ci/run runs the second one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from optarena.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_leads_with_setup_and_run_then_setup_and_test():
    first, second = bash_blocks(README)[:2]
    for command in (first, second):
        assert "python3 -m venv .venv" in command
        assert "torch==2.13.0" in command
    assert ".venv/bin/optarena " in first
    assert "pytest" in second
    assert README.index(first) < README.index("<!-- test-command -->") < README.index(second)


def test_first_command_uses_a_real_subcommand():
    first = bash_blocks(README)[0]
    invocations = re.findall(r"\.venv/bin/optarena (\S+)", first)
    assert invocations
    choices = build_parser()._subparsers._group_actions[0].choices  # the subcommand table
    for name in invocations:
        assert name in choices, f"README runs `optarena {name}`, which does not exist"


def test_ci_extracts_exactly_the_readme_test_command(tmp_path):
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    extract = re.search(r"command=\$\((.*)\)\n", script).group(1)
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    out = subprocess.run(["bash", "-c", extract], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == bash_blocks(README)[1]


def python_blocks(text: str) -> list[str]:
    return [block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


def test_readme_routing_example_runs():
    """The README's param_groups / partition / masked example, on a small model with an embedding."""
    import torch
    from torch import nn

    import optarena
    from optarena import Chain

    [block] = [b for b in python_blocks(README) if "optarena.partition(" in b]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.hidden = nn.Linear(8, 8)
            self.norm = nn.LayerNorm(8)

        def forward(self, tokens):
            return self.norm(self.hidden(self.embed(tokens)))

    model = Model()
    namespace = {"optarena": optarena, "Chain": Chain, "model": model, "print": lambda *a: None}
    exec(block, namespace)
    optimizer = namespace["optimizer"]
    assert {row["route"] for row in optimizer.explain()} == {"sgd", "adam"}
    (model(torch.tensor([1, 2, 3])) ** 3).sum().backward()
    before = model.hidden.weight.detach().clone()
    optimizer.step()
    assert "momentum_buffer" in optimizer.state[model.hidden.weight]
    assert "exp_avg" in optimizer.state[model.embed.weight]
    assert not torch.equal(before, model.hidden.weight)

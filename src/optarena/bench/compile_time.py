"""First-step (compilation) time of the fused path, in new processes, cold and warm.

For each optimizer, three new Python processes run :mod:`optarena.bench.compile_probe`
(build the parameters, time the first fused step), each with its own
``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR`` and ``OPTARENA_CACHE_DIR``:

1. **cold, empty cache**: a new empty directory. This includes Inductor's one-time
   toolchain setup for the directory (ISA probes, headers), which a user pays once;
2. **cold, toolchain warm**: a copy of a directory in which a trivial function was compiled
   once, so only this optimizer's graphs are compiled;
3. **warm**: a new process with the directories left by 2: optarena loads the compiled
   chain from its own cache, so nothing is traced or compiled.

The figures are the probe's own timing of the first ``step()``, so interpreter start-up,
``import torch`` and building the parameters are not in them; the warm process's whole
wall time is reported apart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optarena.optim.compile_cache import ENV_CACHE_DIR
from optarena.optim.toolchain import ENV_SWITCH

PROBE = "optarena.bench.compile_probe"
DEFAULT_TIMEOUT = 900.0


class ProbeError(RuntimeError):
    """A probe process failed; the message holds the end of its output."""


@dataclass(frozen=True)
class CompileTimes:
    cold_empty_s: float | None
    cold_toolchain_s: float | None
    warm_s: float | None
    steady_s: float | None
    """The probe's third step: a step with nothing left to compile."""
    graphs: int | None
    warm_process_s: float | None
    """Wall time of the whole warm process: start-up, imports, parameters, three steps."""
    error: str | None = None


def _environment(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
    env["TRITON_CACHE_DIR"] = str(cache / "triton")
    env[ENV_CACHE_DIR] = str(cache / "optarena")
    env.pop(ENV_SWITCH, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_probe(cache: Path, arguments: list[str], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Run the probe in a new process with its caches in ``cache``; its JSON result."""
    command = [sys.executable, "-m", PROBE, *arguments]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, env=_environment(cache), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(f"the probe ran past {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ProbeError(f"the probe exited with status {done.returncode}: {' | '.join(tail)}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise ProbeError(f"the probe printed no result: {done.stdout.strip()[-300:]}")
    result = json.loads(lines[-1])
    result["process_s"] = time.perf_counter() - start
    return result


class CompileTimer:
    """Runs the three probes per optimizer; owns the temporary cache directories."""

    def __init__(
        self, params: str, threads: int, device: str, timeout: float = DEFAULT_TIMEOUT, dtype: str = "float32"
    ):
        self.params = params
        self.threads = threads
        self.device = device
        self.dtype = dtype
        self.timeout = timeout
        self._root = Path(tempfile.mkdtemp(prefix="optarena-bench-compile-"))
        self._toolchain: Path | None = None
        self.toolchain_s: float | None = None
        """Seconds the trivial compilation took in an empty cache (the one-time setup, roughly)."""

    def _common(self) -> list[str]:
        return ["--params", self.params, "--threads", str(self.threads), "--device", self.device, "--dtype", self.dtype]

    def _toolchain_template(self) -> Path:
        if self._toolchain is None:
            template = self._root / "toolchain"
            template.mkdir()
            result = run_probe(template, [*self._common(), "--trivial"], self.timeout)
            self.toolchain_s = result["trivial_s"]
            self._toolchain = template
        return self._toolchain

    def measure(self, name: str, settings: dict[str, Any]) -> CompileTimes:
        """Cold (empty cache), cold (toolchain warm) and warm first-step times of ``name``."""
        arguments = [*self._common(), "--optimizer", name, "--settings", json.dumps(settings)]
        try:
            empty = self._root / f"{name}-empty"
            empty.mkdir()
            cold = run_probe(empty, arguments, self.timeout)
            shutil.rmtree(empty, ignore_errors=True)
            warmed = self._root / f"{name}-toolchain"
            shutil.copytree(self._toolchain_template(), warmed)
            cold_toolchain = run_probe(warmed, arguments, self.timeout)
            warm = run_probe(warmed, arguments, self.timeout)
            shutil.rmtree(warmed, ignore_errors=True)
        except ProbeError as error:
            return CompileTimes(None, None, None, None, None, None, str(error))
        return CompileTimes(
            cold_empty_s=cold["first_step_s"],
            cold_toolchain_s=cold_toolchain["first_step_s"],
            warm_s=warm["first_step_s"],
            steady_s=warm["third_step_s"],
            graphs=cold["graphs"],
            warm_process_s=warm["process_s"],
        )

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> CompileTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The benchmark's outputs: terminal tables, CSV, JSON and the docs/performance.md page.

Every table, in the terminal and on the page, is made by :func:`table_rows` from the rows
of a :class:`~optarena.bench.runner.BenchResult`, so what is printed is what is stored.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optarena.bench.runner import (
    TARGET_COLD_S,
    TARGET_PEER_SPEEDUP,
    TARGET_VS_ADAM,
    TARGET_VS_FLOOR,
    TARGET_WARM_S,
    BenchResult,
)
from optarena.cli_types import wide_console
from optarena.files import atomic_file, write_atomically

MISSING = "-"
TEXT_HEADERS = ("optimizer", "kind")
"""Columns of words, aligned left; the others hold numbers."""


def _number(value: float | None) -> str:
    if value is None:
        return MISSING
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def _vs_adam(row: dict[str, Any]) -> str:
    if row["fused_vs_adam"] is None:
        return MISSING
    target = f" (≤{row['target_vs_adam']:g})" if row["target_vs_adam"] is not None else ""
    return f"{row['fused_vs_adam']:.2f}{target}{_mark(row['meets_adam_target'])}"


def _speedup(row: dict[str, Any]) -> str:
    if row["peer_speedup"] is None:
        return MISSING
    return f"{row['peer_speedup']:.2f}{_mark(row['meets_peer_target'])}"


def _floor_bytes(row: dict[str, Any]) -> str:
    value = row.get("floor_bytes_per_param")
    return MISSING if value is None else f"{value:g} ({row.get('passes', 1)})"


def _seconds(value: float | None, ok: bool | None = None) -> str:
    return MISSING if value is None else f"{value:.1f}{_mark(ok)}"


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict[str, Any]], str]


SPEED_COLUMNS = (
    Column("optimizer", lambda r: r["optimizer"]),
    Column("kind", lambda r: r["kind"] or MISSING),
    Column("fused ms", lambda r: _number(r["fused_ms"])),
    Column("eager ms", lambda r: _number(r["eager_ms"])),
    Column("torch fused Adam ms", lambda r: _number(r["adam_fused_ms"])),
    Column("fused / Adam (target)", _vs_adam),
    Column("bandwidth GB/s", lambda r: _number(r["bandwidth_gbs"])),
    Column("B / param (passes)", lambda r: _floor_bytes(r)),
    Column("floor ms", lambda r: _number(r.get("floor_ms"))),
    Column(
        f"fused / floor (≤{TARGET_VS_FLOOR:g})",
        lambda r: _ratio(r.get("fused_vs_floor")) + _mark(r.get("meets_floor_target")),
    ),
)
"""Step time: optarena's two backends against torch's fused Adam and the bandwidth limit."""

PEER_COLUMNS = (
    Column("optimizer", lambda r: r["optimizer"]),
    Column("fused ms", lambda r: _number(r["fused_ms"])),
    Column("torch.optim ms", lambda r: _number(r["torch_ms"])),
    Column("torch-optimizer ms", lambda r: _number(r["torch_optimizer_ms"])),
    Column("pytorch-optimizer ms", lambda r: _number(r["pytorch_optimizer_ms"])),
    Column(f"best peer / fused (≥{TARGET_PEER_SPEEDUP:g})", _speedup),
)
"""The same algorithm elsewhere (same-algorithm peers only; the notes name the others)."""

MEMORY_COLUMNS = (
    Column("optimizer", lambda r: r["optimizer"]),
    Column("state B / param", lambda r: _number(r["state_bytes_per_param"])),
    Column("moved B / param", lambda r: _number(r["step_bytes_per_param"])),
    Column("peak extra MiB, fused", lambda r: _number(r["fused_peak_extra_mb"])),
    Column("peak extra MiB, eager", lambda r: _number(r["eager_peak_extra_mb"])),
    Column(
        f"1st step s, empty cache (≤{TARGET_COLD_S:g})",
        lambda r: _seconds(r["compile_cold_empty_s"], r["meets_cold_target"]),
    ),
    Column("1st step s, toolchain warm", lambda r: _seconds(r["compile_cold_toolchain_s"])),
    Column(
        f"1st step s, warm cache (≤{TARGET_WARM_S:g})", lambda r: _seconds(r["compile_warm_s"], r["meets_warm_target"])
    ),
)
"""State size, bytes moved, peak extra memory of a step, first-step (compile) times."""

TABLES = (
    ("Step time", SPEED_COLUMNS),
    ("The same algorithm elsewhere", PEER_COLUMNS),
    ("State, memory and compilation", MEMORY_COLUMNS),
)

CSV_FIELDS = (
    "optimizer",
    "kind",
    "fused_ms",
    "eager_ms",
    "adam_fused_ms",
    "fused_vs_adam",
    "eager_vs_adam",
    "target_vs_adam",
    "meets_adam_target",
    "state_bytes_per_param",
    "step_bytes_per_param",
    "bandwidth_gbs",
    "limit_ms",
    "fused_vs_limit",
    "eager_vs_limit",
    "passes",
    "floor_bytes_per_param",
    "floor_ms",
    "fused_vs_floor",
    "meets_floor_target",
    "torch_ms",
    "torch_label",
    "torch_optimizer_ms",
    "pytorch_optimizer_ms",
    "best_peer_ms",
    "best_peer",
    "peer_speedup",
    "meets_peer_target",
    "fused_peak_extra_mb",
    "eager_peak_extra_mb",
    "compile_cold_empty_s",
    "compile_cold_toolchain_s",
    "compile_warm_s",
    "compile_graphs",
    "compile_warm_process_s",
    "compile_steady_s",
    "meets_cold_target",
    "meets_warm_target",
    "parameters",
    "state_bytes",
    "notes",
)


BANDWIDTH_KEYS = ("update_gbs", "triad_gbs", "copy_gbs", "elements", "repeats")


def table_rows(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[list[str]]:
    """The cells of a table, one list per optimizer, formatted from the stored rows."""
    return [[column.cell(row) for column in columns] for row in rows]


# -- files -------------------------------------------------------------------------------------------


def output_paths(out: str | Path) -> tuple[Path, Path]:
    """``out`` without a ``.csv``/``.json`` suffix, as the pair of files written."""
    out = Path(out)
    if out.suffix in (".csv", ".json"):
        out = out.with_suffix("")
    return out.with_name(out.name + ".csv"), out.with_name(out.name + ".json")


def write_outputs(result: BenchResult, out: str | Path) -> tuple[Path, Path]:
    """Write ``<out>.csv`` (one line per optimizer) and ``<out>.json`` (everything measured)."""
    csv_path, json_path = output_paths(out)
    with atomic_file(csv_path, text=True, newline="", create_folder=True) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in result.rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_FIELDS})
    write_atomically(json_path, json.dumps(result.to_dict(), indent=1) + "\n", create_folder=True)
    return csv_path, json_path


def read_result(path: str | Path) -> BenchResult:
    """A result written by :func:`write_outputs`; ValueError if the file is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = BenchResult.from_dict(data)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None
    except (json.JSONDecodeError, TypeError) as error:
        raise ValueError(f"{path} is not a benchmark result written by `optarena bench` ({error})") from None
    missing = [key for key in BANDWIDTH_KEYS if key not in result.bandwidth]
    missing += sorted({key for row in result.rows for key in CSV_FIELDS if key not in row})
    if missing:
        raise ValueError(
            f"{path} lacks {', '.join(missing)}: it was written by another version of `optarena bench`; "
            "run the benchmark again"
        )
    return result


# -- terminal ----------------------------------------------------------------------------------------


def setup_lines(result: BenchResult) -> list[str]:
    """Machine, software, settings and bandwidth, one fact per line."""
    m, c, b = result.machine, result.config, result.bandwidth
    memory = f", {m['memory_gib']:.0f} GiB" if m.get("memory_gib") else ""
    device = m["gpu"] or f"{m['cpu']} ({m['cpu_count']} logical CPUs{memory})"
    lines = [
        f"date: {m['date']}",
        f"device: {m['device']}: {device}",
        f"software: torch {m['torch']}, Python {m['python']}, optarena {m['optarena']}; {m['platform']}",
        f"torch threads: {m['threads']}",
        f"parameters: {c['params']} preset, {c['parameters']:,} {c.get('dtype', 'float32')} parameters in "
        f"{c['tensors']} tensors ({c['params_description']}); fixed random gradients"
        + (f"; state dtype {c['state_dtype']} where an optimizer takes state_dtype" if c.get("state_dtype") else ""),
        f"timing: median of {c['steps']} interleaved rounds after {c['warmup']} warm-up steps; "
        f"baseline {c['baseline']}" + (f" (failed: {c['baseline_error']})" if c.get("baseline_error") else ""),
    ]
    if c.get("bandwidth_error"):
        lines.append(f"the in-place update timed in the rounds failed: {c['bandwidth_error']}")
    lines += [
        f"bandwidth before the rounds: in-place update {b['update_gbs']:.1f} GB/s, STREAM triad "
        f"{b['triad_gbs']:.1f} GB/s, copy {b['copy_gbs']:.1f} GB/s (medians of {b['repeats']}, "
        f"{b['elements']:,} float32 elements per array); the limits use the in-place update "
        "timed in each optimizer's own rounds (column 'bandwidth GB/s')",
    ]
    for name, status in result.libraries.items():
        state = f"{status['version']}" if status["error"] is None else f"not used: {status['error']}"
        lines.append(f"{name}: {state}")
    if result.toolchain_s is not None:
        lines.append(f"toolchain setup (a trivial compile in an empty cache): {result.toolchain_s:.1f} s")
    return lines


def print_result(result: BenchResult, console: Any = None) -> None:
    """The two tables and the notes, with rich."""
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        console = wide_console()
    for line in setup_lines(result):
        console.print(escape(line), style="dim")
    for title, columns in TABLES:
        table = Table(title=title)
        for column in columns:
            text = column.header in TEXT_HEADERS
            table.add_column(column.header, justify="left" if text else "right", no_wrap=text)
        for cells in table_rows(result.rows, columns):
            table.add_row(*(escape(cell) for cell in cells))
        console.print(table)
    for row in result.rows:
        if row["notes"]:
            console.print(f"[bold]{escape(row['optimizer'])}[/bold]: {escape(row['notes'])}")


# -- docs/performance.md -----------------------------------------------------------------------------


def _markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[str]:
    lines = ["| " + " | ".join(c.header for c in columns) + " |"]
    lines.append("|" + "|".join("---" if c.header in TEXT_HEADERS else "--:" for c in columns) + "|")
    for cells in table_rows(rows, columns):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


METHOD = """\
## Method

- **Parameter set.** `transformer`: the tensors of a 12-block, width-512 transformer (per
  block: qkv 1536 x 512 and bias, attention output 512 x 512 and bias, two LayerNorms'
  weight and bias, fc1 2048 x 512 and bias, fc2 512 x 2048 and bias), an 8000 x 512
  embedding and a final LayerNorm, padded with 512-vectors to 157 tensors: 41,930,752
  float32 parameters. Gradients are fixed random tensors, set once, so a step is the
  optimizer's work alone. Every optimizer runs with its defaults, in one param group,
  except: {settings}.
- **Timing.** One process, `torch.set_num_threads` fixed. Per optimizer, optarena fused
  (`fused=True`), optarena eager (`fused=False`), torch's fused Adam and every peer are
  built over their own copies of the parameters, take 3 untimed warm-up steps (state
  creation, compilation), then 10 rounds in which each takes one timed step, in an order
  that rotates from round to round. Figures are medians over the rounds. Ratios to torch's
  fused Adam use the Adam steps timed in the same rounds.
- **Bandwidth limit.** Optimizers update parameters and state in place, so the bandwidth
  is that of an in-place update, `x += s * g` (`torch._foreach_add_` over a copy of the
  parameters and the gradients: 3 x 4 bytes per element, `x` and `g` read, `x` written),
  timed as one more contender in each optimizer's rounds: the column "bandwidth GB/s" is
  the machine's bandwidth at that moment, with the same device and threads. Before the
  rounds the same update, STREAM's triad (`torch.add(a, b, alpha=s, out=c)`) and a copy
  run on 256 MiB arrays (medians of 15); triad reads lower on CPUs, where writing `c`
  first reads it into the cache (write-allocate, which STREAM does not count). Bytes moved
  per parameter are read off the optimizer's state after its steps: the parameter read
  and written, the gradient read, every state tensor with more than one element read and
  written once (0-d step counters ignored). Adam moves 28 bytes per parameter, SGD 12. The
  limit is bytes moved over the bandwidth: a lower bound, since multi-pass steps
  (per-tensor norms) move more.
- **Peers.** The same algorithm in `torch.optim` (`foreach=True` and, where torch has it,
  `fused=True`), `torch-optimizer` and `pytorch-optimizer` (the `bench` extra; with
  `foreach=True` where its constructor takes it), configured with the same settings. Each
  runs beside optarena's eager step for 20 steps in float64 on a small problem; only peers
  whose displacement is within 1e-3 (relative) of optarena's count as the same algorithm
  and enter "best peer" (differences in where eps enters stay far below that; a different
  update rule lands far above). The notes name the others and how far apart they are.
- **Memory.** State bytes per parameter: all state tensors' bytes over the parameter count.
  Peak extra memory: one more step under `torch.profiler` with `profile_memory=True`, which
  records every allocation and free through c10's CPU allocator (eager operations and
  compiled kernels' buffers alike); the figure is the largest running sum (on CUDA,
  `max_memory_allocated` after `reset_peak_memory_stats`, minus what was allocated before).
- **Compilation.** Three new processes per optimizer run one fused step: with an empty
  `TORCHINDUCTOR_CACHE_DIR` ("cold, empty cache": includes Inductor's one-time setup of a
  cache directory, such as its ISA probes), with a copy of a directory where a trivial
  function was compiled ("cold, toolchain warm": this optimizer's graphs only), and again
  with that directory ("warm": the compiled chain loads from optarena's own cache, nothing is
  traced or compiled).
  The figure is the first `step()` alone, without interpreter start-up and imports.
- **Floors.** Each optimizer's floor is the bytes its algorithm must move per parameter (one
  pass as in the memory model above, plus what a later pass must read again where the
  algorithm needs a per-tensor reduction before its update: LAMB re-reads the parameter and
  the moments, the cautious methods the gradient and the moments; Adafactor needs two
  reductions in sequence, the factored statistics and then the RMS of the update built from
  them, so it reads the gradient three times and the parameter twice), times the parameters,
  over the in-place update's bandwidth measured in the same rounds.
- **Targets** (marked ✓ or ✗, never asserted by a test): every optimizer within
  {floor:g}x of its own floor; elementwise optimizers within
  {elementwise:g}x torch's fused Adam, per-tensor ones (norms, factored moments, gradient
  centralisation) within {per_tensor:g}x; at least {peer:g}x faster than the fastest peer that
  computes the same algorithm; first step at most {cold:g} s with an empty cache and {warm:g} s
  with a warm one.
"""


def method_text() -> str:
    """The page's method section, with the benchmark's settings and targets filled in."""
    from optarena.registry import available

    settings = "; ".join(
        f"{spec.name} " + ", ".join(f"{key} {value:g}" for key, value in spec.settings.items())
        for spec in available()
        if spec.settings
    )
    return METHOD.format(
        settings=settings,
        floor=TARGET_VS_FLOOR,
        elementwise=TARGET_VS_ADAM["elementwise"],
        per_tensor=TARGET_VS_ADAM["per-tensor"],
        peer=TARGET_PEER_SPEEDUP,
        cold=TARGET_COLD_S,
        warm=TARGET_WARM_S,
    )


def render_page(results: Sequence[BenchResult], note: str | None = None) -> str:
    """docs/performance.md: setup, the tables and the notes of each result, then the method."""
    if not results:
        raise ValueError("render_page needs at least one result")
    lines = [
        "# Performance",
        "",
        "Optimizer step time, memory and compilation time, measured by `optarena bench`",
        "(`benchmarks/step_speed.py`). This page is generated by",
        "`optarena bench --markdown docs/performance.md` (or from saved results with",
        "`--from-json`); do not edit it by hand.",
        "",
    ]
    if note:
        lines += [f"> {line}" if line else ">" for line in note.strip().splitlines()] + [""]
    devices = {r.machine["device"].split(":")[0] for r in results}
    if "cuda" not in devices:
        lines += ["GPU: not measured (no GPU was available for these runs).", ""]
    for result in results:
        where = result.machine["gpu"] or result.machine["cpu"]
        dtype = result.config.get("dtype", "float32")
        state = result.config.get("state_dtype")
        precision = dtype + (f", {state} state" if state else "")
        lines += [f"## {result.machine['device']}: {where} ({precision})", ""]
        lines += [f"- {line}" for line in setup_lines(result)] + [""]
        for title, columns in TABLES:
            lines += [f"### {title}", ""] + _markdown_table(result.rows, columns) + [""]
        noted = [row for row in result.rows if row["notes"]]
        if noted:
            lines += ["### Notes", ""] + [f"- **{row['optimizer']}**: {row['notes']}" for row in noted] + [""]
    lines.append(method_text())
    return "\n".join(lines)


def write_page(
    results: Sequence[BenchResult], path: str | Path, note: str | None = None, inputs: Sequence[str | Path] = ()
) -> Path:
    """Write the docs page; ``inputs`` (the JSON files read) are never overwritten by it."""
    return write_atomically(path, render_page(results, note), inputs, create_folder=True)

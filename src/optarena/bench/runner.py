"""The whole benchmark for a list of optimizers: one row of measurements per optimizer.

Per optimizer, in one process and one set of interleaved rounds: optarena fused and eager,
torch's fused Adam (the baseline every ratio is taken against, measured again in each
optimizer's rounds), the peers (:mod:`optarena.bench.peers`) and an in-place update over
the same tensors, whose time gives the memory bandwidth of the moment for the limit. Then, from the same
objects: state bytes and bytes moved (:mod:`optarena.bench.traffic`), peak extra memory of
one more step per contender (:mod:`optarena.bench.memory`), and the first-step compile
times in new processes (:mod:`optarena.bench.compile_time`).

Targets (from the project's acceptance criteria) are reported next to the figures, never
asserted: elementwise optimizers within 1.2x torch's fused Adam, per-tensor ones (norms,
factored moments, gradient centralisation) within 1.5x; at least 3x faster than the fastest
same-algorithm peer; first step at most 10 s cold and 2 s warm.
"""

from __future__ import annotations

import datetime
import gc
import inspect
import os
import platform
import statistics
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from optarena.bench.bandwidth import DEFAULT_ELEMENTS, InPlaceUpdate, measure_bandwidth
from optarena.bench.compile_time import CompileTimer
from optarena.bench.memory import peak_extra_bytes
from optarena.bench.params import DTYPES, ParamSet, get_preset, make_param_set
from optarena.bench.peers import LIBRARIES, SAME_TOLERANCE, Peer, deviation, library_status, peers_for
from optarena.bench.timing import DEFAULT_PEER_STEP_LIMIT_S, Contender, interleaved_rounds, warm_up
from optarena.bench.traffic import measure_traffic
from optarena.checks import whole_number, whole_numbers
from optarena.cli_types import torch_threads

BACKENDS = ("fused", "eager")
TARGET_VS_ADAM = {"elementwise": 1.2, "per-tensor": 1.5}
TARGET_VS_FLOOR = 1.15
"""Each optimizer's fused step within this factor of its own memory-traffic floor."""
TARGET_PEER_SPEEDUP = 3.0
TARGET_COLD_S = 10.0
TARGET_WARM_S = 2.0

BASELINE_LABEL = "torch.optim.Adam(fused)"
STREAM_LABEL = "in-place update (bandwidth)"

_FALLBACK_REQUIRED = {"lr": 1e-3, "momentum": 0.9, "nu": 0.7}


@dataclass
class BenchConfig:
    """What to measure; every field has the default of ``optarena bench``."""

    optimizers: list[str] | None = None
    """Registry names; None: every registered optimizer."""
    params: str = "transformer"
    steps: int = 10
    warmup: int = 3
    threads: int | None = None
    """torch threads; None keeps torch's default."""
    device: str = "cpu"
    backends: tuple[str, ...] = BACKENDS
    peers: bool = True
    compile_timing: bool = True
    memory: bool = True
    bandwidth_elements: int = DEFAULT_ELEMENTS
    seed: int = 0
    dtype: str = "float32"
    """Parameter (and gradient) dtype: a key of :data:`DTYPES`."""
    state_dtype: str | None = None
    """State dtype of bf16 parameters (``state_dtype=`` of every optimizer that takes it);
    None: each optimizer's default (float32)."""
    peer_step_limit_s: float | None = DEFAULT_PEER_STEP_LIMIT_S
    """A peer whose warm-up step takes longer is reported and not timed; None: no limit."""

    def check(self) -> None:
        """ValueError naming the first invalid field and what is allowed."""
        get_preset(self.params)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.state_dtype is not None:
            if self.state_dtype not in DTYPES:
                raise ValueError(f"state_dtype must be one of {', '.join(DTYPES)} or None; got {self.state_dtype!r}")
            if self.dtype == "float32":
                raise ValueError("state_dtype applies to bfloat16 parameters only; pass dtype='bfloat16' with it")
        if self.peer_step_limit_s is not None and not self.peer_step_limit_s > 0:
            raise ValueError(
                f"peer_step_limit_s must be a positive number of seconds or None; got {self.peer_step_limit_s!r}"
            )
        whole_numbers(steps=self.steps, warmup=self.warmup)
        whole_number("threads", self.threads, none_means="torch's default")
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise ValueError(f"backends must be a non-empty subset of {', '.join(BACKENDS)}; got {self.backends}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            device = None
        if device is None or device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
        whole_number("bandwidth_elements", self.bandwidth_elements)


@dataclass
class BenchResult:
    """Everything measured: the machine, the settings, the bandwidth, the libraries, the rows."""

    machine: dict[str, Any]
    config: dict[str, Any]
    bandwidth: dict[str, Any]
    libraries: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    toolchain_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        return cls(**data)


# -- settings and classification -----------------------------------------------------------------


def resolve_names(names: list[str] | None) -> list[str]:
    """Registry names, canonical and without repeats; every registered one when ``names`` is None."""
    from optarena.registry import available, registry_names

    if names is None:
        return [entry.name for entry in available()]
    return registry_names(names)


def bench_settings(name: str, state_dtype: str | None = None) -> dict[str, Any]:
    """The keyword arguments the benchmark passes to ``optarena.create(name, ...)``: the spec's
    settings (arguments without defaults), a fallback for any other required argument, and
    ``state_dtype`` where given and the optimizer takes it."""
    from optarena.registry import lookup

    settings = dict(lookup(name).settings)
    defaults = lookup(name).defaults()
    for key, default in defaults.items():
        if default is inspect.Parameter.empty and key not in settings:
            settings[key] = _FALLBACK_REQUIRED.get(key, 1e-3)
    if state_dtype is not None and "state_dtype" in defaults:
        settings["state_dtype"] = state_dtype
    return settings


def hyperparameters(name: str, state_dtype: str | None = None) -> dict[str, Any]:
    """Every setting of the benchmarked optimizer: defaults with the benchmark's settings."""
    from optarena.registry import lookup

    return {**lookup(name).defaults(), **bench_settings(name, state_dtype)}


def chain_of(optimizer: Any) -> tuple | None:
    """The transforms of an optarena optimizer, looking through wrappers (``.optimizer``)."""
    for _ in range(4):
        if optimizer is None:
            return None
        if hasattr(optimizer, "transforms"):
            return tuple(optimizer.transforms)
        optimizer = getattr(optimizer, "optimizer", None)
    return None


def kind_of(optimizer: Any) -> str | None:
    """``elementwise`` when every transform is; ``per-tensor`` otherwise (norms, factored moments)."""
    chain = chain_of(optimizer)
    if chain is None:
        return None
    return "elementwise" if all(t.elementwise for t in chain) else "per-tensor"


# -- the machine ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where and when the figures were taken."""
    from optarena import __version__

    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optarena": __version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


# -- one optimizer ---------------------------------------------------------------------------------


def _ours(name: str, backend: str, param_set: ParamSet, settings: dict[str, Any]) -> Contender:
    from optarena.registry import create

    fused = backend == "fused"
    return Contender(f"optarena {backend}", lambda: create(name, param_set.fresh(), fused=fused, **settings))


def _peer_contender(peer: Peer, param_set: ParamSet, hp: dict[str, Any]) -> Contender:
    return Contender(peer.label, lambda: peer.build(param_set.fresh(), hp))


def _check_peer(name: str, peer: Peer, settings: dict[str, Any], hp: dict[str, Any]) -> tuple[float | None, str | None]:
    from optarena.registry import create

    try:
        with warnings.catch_warnings():  # the timed run reports the peer's warnings
            warnings.simplefilter("ignore")
            value = deviation(
                lambda params: create(name, params, fused=False, **settings), lambda params: peer.build(params, hp)
            )
    except Exception as error:  # a peer that cannot run the check is reported, not fatal
        return None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]
    return value, None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def _fastest(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    timed = [e for e in entries if e["median_ms"] is not None]
    return min(timed, key=lambda e: e["median_ms"]) if timed else None


def measure_optimizer(
    name: str,
    param_set: ParamSet,
    baseline: Contender | None,
    stream: Contender,
    config: BenchConfig,
    libraries: dict[str, Any],
    timer: CompileTimer | None,
) -> dict[str, Any]:
    """One row: every figure for the optimizer registered as ``name``.

    ``baseline`` (torch's fused Adam) and ``stream`` (the in-place update over the same
    tensors, whose time gives the bandwidth of the moment) are shared by every optimizer
    and timed again in each one's rounds."""
    device = torch.device(config.device)
    settings = bench_settings(name, config.state_dtype)
    hp = hyperparameters(name, config.state_dtype)
    notes: list[str] = []
    ours = {backend: _ours(name, backend, param_set, settings) for backend in config.backends}
    peers: list[tuple[Peer, Contender, float | None, str | None]] = []
    if config.peers:
        found, library_notes = peers_for(name, libraries)
        notes += library_notes
        for peer in found:
            value, problem = _check_peer(name, peer, settings, hp)
            peers.append((peer, _peer_contender(peer, param_set, hp), value, problem))

    for _, contender, _, _ in peers:  # a peer too slow to time is reported, not timed
        warm_up(contender, config.warmup, device, config.peer_step_limit_s)
    shared = [c for c in (baseline, stream) if c is not None and c.error is None]
    starts = {c.label: len(c.samples) for c in shared}
    contenders = [*ours.values(), *[c for _, c, _, _ in peers], *shared]
    interleaved_rounds(contenders, config.steps, config.warmup, device)

    def samples(contender: Contender) -> list[float]:
        return contender.samples[starts.get(contender.label, 0) :] if contender in shared else contender.samples

    adam_ms = 1e3 * statistics.median(samples(baseline)) if baseline in shared and samples(baseline) else None
    bandwidth_gbs = None
    if stream in shared and samples(stream):
        bandwidth_gbs = stream.optimizer.bytes_per_step / statistics.median(samples(stream)) / 1e9

    # state, bytes moved, kind: from whichever of ours ran
    reference = next((c.optimizer for c in ours.values() if c.optimizer is not None), None)
    traffic = kind = None
    if reference is not None:
        params = [p for group in reference.param_groups for p in group["params"]]
        traffic = measure_traffic(reference, params)
        kind = kind_of(reference)

    peaks: dict[str, int | None] = {}
    for contender in contenders:
        if contender in shared or contender.optimizer is None:
            continue
        peaks[contender.label] = peak_extra_bytes(contender.step, device) if config.memory else None

    entries = []
    for peer, contender, value, problem in peers:
        same = value is not None and value <= SAME_TOLERANCE
        entry = {
            "library": peer.library,
            "label": peer.label,
            "median_ms": _ms(contender.median_ms),
            "mean_ms": _ms(contender.mean_ms),
            "deviation": value,
            "same_algorithm": same,
            "peak_extra_bytes": peaks.get(contender.label),
            "note": peer.note,
            "error": contender.error or (f"check failed: {problem}" if problem else None),
            "warnings": contender.warnings,
        }
        entries.append(entry)
        if contender.error:
            notes.append(f"{peer.label} failed: {contender.error}")
        elif problem:
            notes.append(f"{peer.label} could not be checked ({problem})")
        elif not same:
            timed = f", {contender.median_ms:.1f} ms" if contender.median_ms is not None else ""
            why = f": {peer.note}" if peer.note else ""
            notes.append(f"{peer.label} is a different variant (deviation {value:.2g}{timed}; not counted){why}")
        elif value > 1e-6:
            notes.append(f"{peer.label} agrees to {value:.1g} (counted as the same algorithm)")
    for contender in ours.values():
        if contender.error:
            notes.append(f"{contender.label} failed: {contender.error}")
        notes += [f"{contender.label}: {w}" for w in contender.warnings]

    same_entries = [e for e in entries if e["same_algorithm"]]
    best_torch = _fastest([e for e in same_entries if e["library"] == "torch.optim"])
    best_by_library = {lib: _fastest([e for e in same_entries if e["library"] == lib]) for lib in LIBRARIES}
    best_peer = _fastest(same_entries)
    fused_ms = _ms(ours["fused"].median_ms) if "fused" in ours else None
    eager_ms = _ms(ours["eager"].median_ms) if "eager" in ours else None
    limit_ms = _ms(1e3 * traffic.limit_seconds(bandwidth_gbs)) if traffic and bandwidth_gbs else None
    floor = floor_bytes_per_param(name, traffic, param_set) if traffic else None
    floor_ms = _ms(1e3 * floor * traffic.parameters / (bandwidth_gbs * 1e9)) if floor and bandwidth_gbs else None
    target = TARGET_VS_ADAM.get(kind) if kind else None
    fused_vs_adam = _ratio(fused_ms, adam_ms)
    speedup = _ratio(best_peer["median_ms"], fused_ms) if best_peer else None

    compile_times = timer.measure(name, settings) if timer is not None and "fused" in ours else None
    if compile_times is not None and compile_times.error:
        notes.append(f"compile timing failed: {compile_times.error}")

    def meets(value: float | None, limit: float | None, above: bool = False) -> bool | None:
        if value is None or limit is None:
            return None
        return value >= limit if above else value <= limit

    row = {
        "optimizer": name,
        "kind": kind,
        "fused_ms": fused_ms,
        "eager_ms": eager_ms,
        "fused_mean_ms": _ms(ours["fused"].mean_ms) if "fused" in ours else None,
        "eager_mean_ms": _ms(ours["eager"].mean_ms) if "eager" in ours else None,
        "adam_fused_ms": _ms(adam_ms),
        "fused_vs_adam": fused_vs_adam,
        "eager_vs_adam": _ratio(eager_ms, adam_ms),
        "target_vs_adam": target,
        "meets_adam_target": meets(fused_vs_adam, target),
        "state_bytes_per_param": round(traffic.state_bytes_per_param, 4) if traffic else None,
        "step_bytes_per_param": round(traffic.step_bytes_per_param, 4) if traffic else None,
        "bandwidth_gbs": round(bandwidth_gbs, 3) if bandwidth_gbs else None,
        "limit_ms": limit_ms,
        "fused_vs_limit": _ratio(fused_ms, limit_ms),
        "passes": lookup_spec(name).passes,
        "floor_bytes_per_param": round(floor, 4) if floor else None,
        "floor_ms": floor_ms,
        "fused_vs_floor": _ratio(fused_ms, floor_ms),
        "meets_floor_target": meets(_ratio(fused_ms, floor_ms), TARGET_VS_FLOOR),
        "eager_vs_limit": _ratio(eager_ms, limit_ms),
        "torch_ms": best_torch["median_ms"] if best_torch else None,
        "torch_label": best_torch["label"] if best_torch else None,
        "torch_optimizer_ms": best_by_library["torch-optimizer"]["median_ms"]
        if best_by_library["torch-optimizer"]
        else None,
        "pytorch_optimizer_ms": best_by_library["pytorch-optimizer"]["median_ms"]
        if best_by_library["pytorch-optimizer"]
        else None,
        "best_peer_ms": best_peer["median_ms"] if best_peer else None,
        "best_peer": best_peer["label"] if best_peer else None,
        "peer_speedup": speedup,
        "meets_peer_target": meets(speedup, TARGET_PEER_SPEEDUP, above=True),
        "fused_peak_extra_mb": _mb(peaks.get(ours["fused"].label)) if "fused" in ours else None,
        "eager_peak_extra_mb": _mb(peaks.get(ours["eager"].label)) if "eager" in ours else None,
        "compile_cold_empty_s": _s(compile_times.cold_empty_s) if compile_times else None,
        "compile_cold_toolchain_s": _s(compile_times.cold_toolchain_s) if compile_times else None,
        "compile_warm_s": _s(compile_times.warm_s) if compile_times else None,
        "compile_graphs": compile_times.graphs if compile_times else None,
        "compile_warm_process_s": _s(compile_times.warm_process_s) if compile_times else None,
        "compile_steady_s": _s(compile_times.steady_s) if compile_times else None,
        "meets_cold_target": meets(compile_times.cold_empty_s, TARGET_COLD_S) if compile_times else None,
        "meets_warm_target": meets(compile_times.warm_s, TARGET_WARM_S) if compile_times else None,
        "notes": "; ".join(notes),
        "settings": {k: v for k, v in hp.items() if k not in ("maximize", "foreach", "fused", "nonfinite")},
        "parameters": traffic.parameters if traffic else None,
        "state_bytes": traffic.state_bytes if traffic else None,
        "samples_ms": {c.label: [round(1e3 * t, 6) for t in samples(c)] for c in contenders},
        "peers": entries,
    }
    for contender in contenders:
        if contender not in shared:
            contender.optimizer = None
    gc.collect()
    return row


def lookup_spec(name: str) -> Any:
    from optarena.registry import lookup

    return lookup(name)


def floor_bytes_per_param(name: str, traffic: Any, param_set: ParamSet) -> float:
    """The bytes per parameter the algorithm must move: one pass (``traffic``'s model: the
    parameter read and written, the gradient read, each state tensor read and written, less the
    writes of :attr:`~optarena.spec.Spec.read_only_state`), plus what its later passes read
    again, if it has any (:attr:`optarena.spec.Spec.second_pass`,
    :attr:`~optarena.spec.Spec.third_pass`)."""
    item = param_set.values[0].element_size()
    again = {"param": item, "grad": item, "state": traffic.state_bytes_per_param}
    spec = lookup_spec(name)
    unwritten = item * len(spec.read_only_state)
    return traffic.step_bytes_per_param - unwritten + sum(again[key] for key in spec.second_pass + spec.third_pass)


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 3)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the run ----------------------------------------------------------------------------------------


def run_benchmark(
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
    on_row: Callable[[BenchResult], None] | None = None,
) -> BenchResult:
    """Measure every optimizer of ``config``; ``progress`` receives one line per stage and
    ``on_row`` the result so far after each optimizer (to save it: a long run stopped midway
    keeps what it measured)."""
    config.check()
    names = resolve_names(config.optimizers)
    with torch_threads(config.threads):
        return _run(config, names, progress or (lambda message: None), on_row or (lambda result: None))


def _run(
    config: BenchConfig, names: list[str], say: Callable[[str], None], saved: Callable[[BenchResult], None]
) -> BenchResult:
    device = torch.device(config.device)
    say(f"bandwidth: arrays of {config.bandwidth_elements} float32 elements")
    bandwidth = measure_bandwidth(device, config.bandwidth_elements)
    say(
        f"bandwidth: update {bandwidth.update_gbs:.1f} GB/s, triad {bandwidth.triad_gbs:.1f} GB/s, "
        f"copy {bandwidth.copy_gbs:.1f} GB/s"
    )
    param_set = make_param_set(config.params, device=device, dtype=DTYPES[config.dtype], seed=config.seed)
    libraries = {name: library_status(name) for name in LIBRARIES} if config.peers else {}
    baseline = Contender(BASELINE_LABEL, lambda: torch.optim.Adam(param_set.fresh(), fused=True))
    warm_up(baseline, config.warmup, device)
    stream = Contender(STREAM_LABEL, lambda: InPlaceUpdate(param_set.fresh(), param_set.grads))
    warm_up(stream, config.warmup, device)
    timer = None
    if config.compile_timing and "fused" in config.backends:
        timer = CompileTimer(config.params, torch.get_num_threads(), config.device, dtype=config.dtype)
    result = BenchResult(
        machine=machine_info(device),
        config={
            **asdict(config),
            "optimizers": names,
            "backends": list(config.backends),
            "parameters": param_set.preset.elements,
            "tensors": param_set.preset.tensors,
            "params_description": param_set.preset.description,
            "baseline": BASELINE_LABEL,
            "baseline_error": baseline.error,
            "bandwidth_error": stream.error,
        },
        bandwidth=bandwidth.to_dict(),
        libraries={name: asdict(status) for name, status in libraries.items()},
    )
    try:
        for index, name in enumerate(names, 1):
            say(f"[{index}/{len(names)}] {name}")
            result.rows.append(measure_optimizer(name, param_set, baseline, stream, config, libraries, timer))
            saved(result)
        if timer is not None:
            result.toolchain_s = timer.toolchain_s
    finally:
        if timer is not None:
            timer.close()
    return result

"""Compiled chain functions kept on disk, so that a new process neither traces nor compiles.

``torch.compile`` caches Inductor's kernels on disk, but Dynamo traces the function again in
every process, which for a chunk of tensors takes seconds. The fused backend therefore
compiles each chain structure ahead of time (``torch.compile(...).aot_compile``), saves the
result under :func:`cache_dir`, and loads it in later processes.

A new process also pays for Inductor's vector-ISA probes (a child process per ISA, about
1 s in all), even when every kernel comes from disk. After a compilation in which the probes
accepted every ISA the CPU reports, a marker file records that for this CPU, compiler and
torch version, and later loads skip the probes (:func:`trusted_isas`). With an empty Inductor
cache each probe also compiles a test program first (about 7 s one after another); a
compilation therefore starts them all at once in the background (:func:`start_isa_probes`),
where they run beside Dynamo's trace instead of after it.

A file's name is a hash of the chain's structure key, the torch and optarena versions and
the source code of every module whose code is traced (the transforms of the chain, the list
operations, the chain runner), so editing any of them, or upgrading torch, makes a new
entry instead of loading a stale one. A file that fails to load is ignored and rewritten.
Set ``OPTARENA_CACHE_DIR`` to move the cache, or to an empty string to keep nothing on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import platform
import sys
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

ENV_CACHE_DIR = "OPTARENA_CACHE_DIR"
_RUNTIME_MODULES = (
    "optarena.optim.fused",
    "optarena.optim.execution",
    "optarena.transforms.ops",
    "optarena.transforms.base",
)


def cache_dir() -> Path | None:
    """Where compiled chains are kept: ``$OPTARENA_CACHE_DIR``, else ``~/.cache/optarena/fused``.

    None when ``OPTARENA_CACHE_DIR`` is set to an empty string (nothing is kept).
    """
    chosen = os.environ.get(ENV_CACHE_DIR)
    if chosen is not None:
        return Path(chosen) if chosen.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "optarena" / "fused"


def _module_source(name: str) -> str | None:
    module = sys.modules.get(name)
    try:
        return inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        return None


def entry_name(key: Hashable, transform_modules: Sequence[str]) -> str | None:
    """The file name for ``key``; None when some traced source cannot be read (then nothing is cached)."""
    import optarena

    digest = hashlib.sha256()
    digest.update(repr(key).encode())
    digest.update(f"torch {torch.__version__} optarena {optarena.__version__} python {sys.version_info[:2]}".encode())
    for name in sorted(set(_RUNTIME_MODULES) | set(transform_modules)):
        source = _module_source(name)
        if source is None:
            return None
        digest.update(name.encode())
        digest.update(source.encode())
    return f"chain-{digest.hexdigest()[:32]}.bin"


def _globals(transform_modules: Sequence[str]) -> dict[str, Any]:
    """The global names the traced code may refer to (``torch`` and the modules' own names)."""
    names: dict[str, Any] = {}
    for module_name in (*_RUNTIME_MODULES, *transform_modules):
        module = sys.modules.get(module_name)
        if module is not None:
            names.update(vars(module))
    names["torch"] = torch
    return names


def _cpu_flags() -> list[str] | None:
    """The vector ISA flags the CPU reports, as Inductor reads them (None off x86)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        from torch._inductor import cpu_vec_isa

        return sorted(cpu_vec_isa.x86_isa_checker())
    except Exception:  # pragma: no cover - depends on torch's internals
        return None


def _isa_marker(flags: list[str] | None) -> Path | None:
    """The marker file for this CPU's ISA probe result (None without flags or a cache)."""
    folder = cache_dir()
    if flags is None or folder is None:
        return None
    text = f"{flags} torch {torch.__version__} cxx {os.environ.get('CXX', '')}"
    return folder / f"vec-isa-{hashlib.sha256(text.encode()).hexdigest()[:16]}.ok"


def _candidate_isas(flags: list[str]) -> list[Any]:
    """Inductor's vector ISAs whose flags the CPU reports (those its probes will try)."""
    from torch._inductor import cpu_vec_isa

    available = set(flags)
    return [isa for isa in cpu_vec_isa.supported_vec_isa_list if set(str(isa).split()) <= available]


def _user_chose_isas() -> bool:
    """Whether the user decided the probes' answer (``TORCHINDUCTOR_VEC_ISA_OK``)."""
    import torch._inductor.config as inductor_config

    return inductor_config.cpp.vec_isa_ok is not None


def _marked(flags: list[str] | None) -> bool:
    """Whether this machine's marker says the probes all passed before."""
    marker = _isa_marker(flags)
    return marker is not None and marker.is_file()


def remember_isa_probes() -> None:
    """After a compilation in this process: mark the machine if Inductor's probes accepted
    every vector ISA the CPU reports (then a later process need not probe again)."""
    flags = _cpu_flags()
    marker = _isa_marker(flags)
    if marker is None:
        return
    try:
        from torch._inductor import cpu_vec_isa

        reported = [str(isa) for isa in _candidate_isas(flags)]
        if [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()] == reported:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    except Exception:  # pragma: no cover - depends on torch's internals
        return


_probes_started = threading.Event()


def start_isa_probes() -> threading.Thread | None:
    """Start Inductor's vector-ISA probes for the ISAs this CPU reports, all at once, in a
    background thread (once per process; nothing when this machine's marker exists or the
    user has decided with ``TORCHINDUCTOR_VEC_ISA_OK``).

    Inductor caches each probe's answer, so its own sequential probing during code generation
    finds them answered (or, for one still running, waits on that build's file lock and only
    repeats the short load check). The answers are Inductor's own: nothing is assumed.
    Returns the thread, or None when nothing was started.
    """
    if _probes_started.is_set():
        return None
    _probes_started.set()
    flags = _cpu_flags()
    try:
        if flags is None or _user_chose_isas() or _marked(flags):
            return None
        candidates = _candidate_isas(flags)
    except Exception:  # pragma: no cover - depends on torch's internals
        return None
    if not candidates:
        return None

    def probe_all() -> None:
        with contextlib.suppress(Exception), ThreadPoolExecutor(max_workers=len(candidates)) as pool:
            list(pool.map(bool, candidates))

    thread = threading.Thread(target=probe_all, name="optarena-isa-probes", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def trusted_isas() -> Iterator[None]:
    """Tell Inductor to trust the CPU's reported ISAs when this machine's marker exists and
    the user has not chosen (``TORCHINDUCTOR_VEC_ISA_OK``)."""
    import torch._inductor.config as inductor_config

    if _user_chose_isas() or not _marked(_cpu_flags()):
        yield
        return
    with inductor_config.patch({"cpp.vec_isa_ok": True}):
        yield


def load(name: str, transform_modules: Sequence[str] = ()) -> Callable[..., Any] | None:
    """The compiled function saved as ``name``, or None (missing, unreadable or from another setup)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / name
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle, trusted_isas():
            return torch.compiler.load_compiled_function(handle, f_globals=_globals(transform_modules))
    except Exception:
        return None


def save(name: str, compiled: Any) -> bool:
    """Save an ``aot_compile`` result as ``name`` (written to a temporary file, then renamed)."""
    folder = cache_dir()
    if folder is None:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-")
        os.close(handle)
        compiled.save_compiled_function(temporary)
        os.replace(temporary, folder / name)
        return True
    except Exception:
        return False

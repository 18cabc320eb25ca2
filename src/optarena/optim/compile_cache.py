"""Compiled chain functions kept on disk, so that a new process neither traces nor compiles.

``torch.compile`` caches Inductor's kernels on disk, but Dynamo traces the function again in
every process, which for a chunk of tensors takes seconds. The fused backend therefore
compiles each chain structure ahead of time (``torch.compile(...).aot_compile``), saves the
result under :func:`cache_dir`, and loads it in later processes.

A file's name is a hash of the chain's structure key, the torch and optarena versions and
the source code of every module whose code is traced (the transforms of the chain, the list
operations, the chain runner), so editing any of them, or upgrading torch, makes a new
entry instead of loading a stale one. A file that fails to load is ignored and rewritten.
Set ``OPTARENA_CACHE_DIR`` to move the cache, or to an empty string to keep nothing on disk.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import tempfile
from collections.abc import Callable, Hashable, Sequence
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


def load(name: str, transform_modules: Sequence[str] = ()) -> Callable[..., Any] | None:
    """The compiled function saved as ``name``, or None (missing, unreadable or from another setup)."""
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / name
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
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

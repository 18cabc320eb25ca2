"""What identifies a workload's runs beyond its name, budget and target: its definition and its data.

A trial is reused only when its key matches, and the key hashes the workload's
configuration (:func:`optarena.arena.trial.workload_config`). Two workloads that share a
name must therefore not share a key when their code or their data differ:

- **built-in workloads** are defined by optarena's own code, which the trial key already
  names through the optarena version; those that read no files add nothing here, so their
  keys are those of stores written before fingerprints existed;
- **built-in workloads on files** (``mnist-mlp``, ``cifar10-cnn``) add a SHA-256 of the
  arrays they read (``--data-dir A`` and ``--data-dir B`` are different workloads; the
  same files in two folders are the same one);
- **your own workloads** (``package.module:factory``) add the spec and a SHA-256 of the
  source of the factory's module and of the workload's class's module, so a workload that
  takes a built-in's name, or whose code was edited, gets new trials. Their data: the
  workload's own ``fingerprint`` attribute (a string, or a method returning one) when it has
  one, else the data folder's file names, sizes and modification times.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

MAX_LISTED_FILES = 100_000
"""A data folder with more files than this is fingerprinted by its first ones in sorted order."""


def is_custom(spec: str) -> bool:
    """Whether ``spec`` names a workload factory (``package.module:factory``) rather than a built-in."""
    return ":" in spec


def _source(module_name: str) -> str:
    module = sys.modules.get(module_name)
    try:
        return inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return ""


def definition_digest(workload: Any, spec: str) -> str:
    """A SHA-256 of ``spec`` and the source of the modules that define the factory and the workload."""
    module_name = spec.partition(":")[0].strip()
    digest = hashlib.sha256(spec.strip().encode())
    for name in sorted({module_name, type(workload).__module__}):
        digest.update(b"\0" + name.encode() + b"\0" + _source(name).encode())
    return digest.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """A SHA-256 of the relative names, sizes and modification times of the files under ``folder``."""
    root = Path(folder).expanduser().resolve()
    digest = hashlib.sha256(str(root).encode())
    listed = 0
    for directory, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(directory) / name
            try:
                found = path.stat()
            except OSError:
                continue
            digest.update(f"\0{path.relative_to(root)}\0{found.st_size}\0{found.st_mtime_ns}".encode())
            listed += 1
            if listed >= MAX_LISTED_FILES:
                return digest.hexdigest()
    return digest.hexdigest()


def _own_fingerprint(workload: Any) -> str | None:
    value = getattr(workload, "fingerprint", None)
    if callable(value):
        value = value()
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"workload {getattr(workload, 'name', workload)!r}: fingerprint must be a non-empty string "
            f"(or a method returning one), got {value!r}"
        )
    return value


def workload_fingerprint(workload: Any, spec: str, data_dir: str | Path | None) -> dict[str, str]:
    """The entries :func:`optarena.arena.trial.workload_config` adds to a workload's configuration."""
    found: dict[str, str] = {}
    if is_custom(spec):
        found["spec"] = spec.strip()
        found["definition"] = definition_digest(workload, spec)
    data = _own_fingerprint(workload)
    if data is None and is_custom(spec) and data_dir is not None:
        data = folder_digest(data_dir)
    if data is not None:
        found["data"] = data
    return found

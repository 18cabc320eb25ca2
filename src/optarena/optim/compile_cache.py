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

Loading an entry unpickles it, which can run any code, so nothing is loaded that this user
did not write: every entry carries an HMAC-SHA256 of its name and bytes under a per-user
key (32 random bytes in ``$XDG_CONFIG_HOME/optarena/cache.key``, default
``~/.config/optarena``: a file of mode 0600, in a folder made with mode 0700 that nobody else
may write, both the user's own),
and an entry whose tag does not verify is never unpickled. A cache folder owned by another
user, or writable by group or others, is not used at all (one :class:`CacheFolderWarning`
says why). Entries are read and written without following symbolic links.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import inspect
import io
import os
import platform
import secrets
import stat
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

ENV_CACHE_DIR = "OPTARENA_CACHE_DIR"
KEY_FILE = "cache.key"
KEY_BYTES = 32
SIGNED_MAGIC = b"optarena-signed-entry-1\n"
"""The first bytes of a signed entry; the HMAC-SHA256 tag and the payload follow."""
MAX_ENTRY_BYTES = 1 << 30
"""An entry larger than this is not read (compiled chains are a few MB)."""
_RUNTIME_MODULES = (
    "optarena.optim.compiled",
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


class CacheFolderWarning(UserWarning):
    """The compile cache's folder (or key) is not private to this user, so nothing is kept on disk."""


_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"optarena keeps no compiled chains on disk: {reason}", CacheFolderWarning, stacklevel=3)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _private_problem(path: Path, found: os.stat_result, *, secret: bool) -> str | None:
    """Why ``path`` is not this user's own (None when it is): another owner, or group/others
    may write it (``secret``: may read it either)."""
    if not hasattr(os, "getuid"):  # no POSIX owners and modes (Windows): the profile folder is private
        return None
    if found.st_uid != os.getuid():
        return f"{path} belongs to user id {found.st_uid}, not to this user ({os.getuid()})"
    loose = stat.S_IMODE(found.st_mode) & (0o077 if secret else 0o022)
    if loose:
        allowed = "0700 (0600 for a file)" if secret else "writable by its owner only"
        return f"{path} has mode {stat.S_IMODE(found.st_mode):04o}; it must be {allowed}"
    return None


def _private_folder(folder: Path) -> bool:
    """Make ``folder`` (mode 0700) if missing; True when it is a folder of this user's that
    nobody else may write. Otherwise warns once and returns False."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = os.stat(folder)
    except OSError as error:
        _warn_once(f"cannot use {folder} ({error.strerror or error})")
        return False
    if not stat.S_ISDIR(found.st_mode):
        _warn_once(f"{folder} is not a folder")
        return False
    problem = _private_problem(folder, found, secret=False)
    if problem is not None:
        _warn_once(problem)
        return False
    return True


def usable_cache_dir() -> Path | None:
    """:func:`cache_dir` when it is this user's own and no one else may write it; else None."""
    folder = cache_dir()
    if folder is None or not _private_folder(folder):
        return None
    return folder


def key_path() -> Path:
    """Where the signing key lives: ``$XDG_CONFIG_HOME/optarena/cache.key`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "optarena" / KEY_FILE


def _read_key(path: Path) -> bytes | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode):
            raise ValueError(f"{path} is not a regular file")
        problem = _private_problem(path, found, secret=True)
        if problem is not None:
            raise ValueError(problem)
        key = handle.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key; delete it to make a new one")
    return key


def _signing_key() -> bytes | None:
    """This user's key, made on first use; None (after one warning) when it cannot be kept privately."""
    path = key_path()
    if not _private_folder(path.parent):  # made 0700; one others may write is refused
        return None
    try:
        key = _read_key(path)
        if key is not None:
            return key
        # Written whole under a temporary name, then linked into place: a process that
        # loses the race reads the winner's complete key.
        temporary = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return _read_key(path)
    except (OSError, ValueError) as error:
        _warn_once(f"the signing key {path} is unusable ({getattr(error, 'strerror', None) or error})")
        return None


def _tag(key: bytes, name: str, payload: bytes) -> bytes:
    return hmac.new(key, name.encode() + b"\0" + payload, hashlib.sha256).digest()


def write_entry(name: str, payload: bytes) -> bool:
    """Save ``payload`` as entry ``name``, signed with this user's key; False when nothing was kept."""
    folder = usable_cache_dir()
    key = _signing_key() if folder is not None else None
    if folder is None or key is None:
        return False
    from optarena.files import write_atomically

    try:
        write_atomically(folder / name, SIGNED_MAGIC + _tag(key, name, payload) + payload)
        return True
    except OSError:
        return False


def read_entry(name: str) -> bytes | None:
    """The payload of entry ``name`` if this user's key signed it; None otherwise (missing,
    unsigned, signed with another key, tampered with, a link, or too large)."""
    folder = usable_cache_dir()
    if folder is None or os.sep in name or name in ("", ".", ".."):
        return None
    try:
        descriptor = os.open(folder / name, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_ENTRY_BYTES:
            return None
        if _private_problem(folder / name, found, secret=False) is not None:
            return None
        data = handle.read(MAX_ENTRY_BYTES + 1)
    header = len(SIGNED_MAGIC) + hashlib.sha256().digest_size
    if len(data) < header or not data.startswith(SIGNED_MAGIC):
        return None
    key = _signing_key()
    if key is None:
        return None
    tag, payload = data[len(SIGNED_MAGIC) : header], data[header:]
    if not hmac.compare_digest(tag, _tag(key, name, payload)):
        return None
    return payload


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
    """The marker file for this CPU's ISA probe result (None without flags or a usable cache)."""
    folder = usable_cache_dir() if flags is not None else None
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
            from optarena.files import write_atomically

            write_atomically(marker, b"")
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
    """The compiled function saved as ``name``, or None (missing, unsigned, unreadable or from another setup)."""
    payload = read_entry(name)
    if payload is None:
        return None
    try:
        with trusted_isas():
            return torch.compiler.load_compiled_function(io.BytesIO(payload), f_globals=_globals(transform_modules))
    except Exception:
        return None


def save(name: str, compiled: Any) -> bool:
    """Save an ``aot_compile`` result as ``name``, signed (serialised in a private temporary folder)."""
    folder = usable_cache_dir()
    if folder is None:
        return False
    try:
        with tempfile.TemporaryDirectory(prefix=".serialising-", dir=folder) as private:
            serialised = Path(private) / "entry"
            compiled.save_compiled_function(str(serialised))
            payload = serialised.read_bytes()
    except Exception:
        return False
    return write_entry(name, payload)

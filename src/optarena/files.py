"""Every file optarena writes goes through here: whole or not at all, never through a link.

A file is written to a fresh temporary file in the target's own folder, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` under a random name (so a name planted in advance, a
symbolic link included, is never opened), flushed to disk with ``fsync`` and renamed over
the target with :func:`os.replace`. A reader sees the old file or the new one, never half
of one; a target that is a symbolic link is replaced by the file, not written through; a
crash leaves at most a hidden ``.NAME.*.tmp`` file next to the target.

An output that is one of the command's inputs (the same file by device and inode, so also
through a symbolic or hard link) is refused with :class:`OutputError` before anything is
written: ``optarena report --db a.sqlite --out a.sqlite`` must not replace the store.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

_NAME_LIMIT = 120
"""Characters of the target's name kept in a temporary name (file names are limited to 255 bytes)."""
_ATTEMPTS = 100


class OutputError(ValueError):
    """An output path that cannot be written as asked: a folder, a missing folder, or one of the inputs."""


PathLike = str | os.PathLike[str]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: PathLike, inputs: Iterable[PathLike] = (), *, create_folder: bool = False) -> Path:
    """``path`` as a :class:`Path` if it can be written; else an :class:`OutputError` saying why.

    ``inputs`` are files the command reads: writing over one of them (by any name) is refused.
    ``create_folder`` makes a missing parent folder instead of refusing.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputError(f"{str(path)!r} names a folder; give a file name")
    if path.is_dir():
        raise OutputError(f"{str(path)!r} is a folder; give a file name")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputError(
                f"the output {str(path)!r} is the input {str(source)!r}: writing it would destroy what is read; "
                "give the output another name"
            )
    folder = path.parent
    if not folder.is_dir():
        if create_folder and not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        else:
            raise OutputError(
                f"the output folder {str(folder)!r} does not exist (writing {str(path)!r}); create it first"
            )
    return path


def files_under(folder: PathLike | None, limit: int = 100_000) -> list[Path]:
    """The regular files under ``folder`` (at most ``limit``; none for None): a data folder's
    files, as the inputs an output must not replace."""
    if folder is None:
        return []
    found: list[Path] = []
    for directory, _, names in os.walk(folder):
        for name in names:
            found.append(Path(directory) / name)
            if len(found) >= limit:
                return found
    return found


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name[:_NAME_LIMIT]}.{secrets.token_hex(8)}.tmp")


def _create_exclusive(target: Path) -> tuple[int, Path]:
    """A new file next to ``target``, opened for writing; never an existing name, never a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(_ATTEMPTS):
        temporary = _temporary_name(target)
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {str(target)!r} after {_ATTEMPTS} tries")


def _keep_mode(descriptor: int, target: Path) -> None:
    """Give the new file the permissions of the regular file it replaces (new files: 0666 less the umask)."""
    try:
        existing = os.stat(target, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISREG(existing.st_mode) and hasattr(os, "fchmod"):
        os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; nothing to do elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _discard(temporary: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temporary)


@contextlib.contextmanager
def atomic_file(
    path: PathLike,
    inputs: Iterable[PathLike] = (),
    *,
    text: bool = False,
    encoding: str = "utf-8",
    newline: str | None = None,
    create_folder: bool = False,
) -> Iterator[IO]:
    """A file object whose content replaces ``path`` when the block ends without an error.

    If the block raises, ``path`` is left as it was and the temporary file is removed.
    """
    target = check_output(path, inputs, create_folder=create_folder)
    descriptor, temporary = _create_exclusive(target)
    try:
        _keep_mode(descriptor, target)
        mode = "w" if text else "wb"
        options = {"encoding": encoding, "newline": newline} if text else {}
        with os.fdopen(descriptor, mode, **options) as handle:
            descriptor = -1  # the file object owns it now
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        if descriptor >= 0:
            os.close(descriptor)
        _discard(temporary)
        raise
    _sync_folder(target.parent)


def write_atomically(
    path: PathLike,
    data: bytes | str,
    inputs: Iterable[PathLike] = (),
    *,
    encoding: str = "utf-8",
    create_folder: bool = False,
) -> Path:
    """Replace ``path`` with ``data`` (text is encoded with ``encoding``); returns the path written."""
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_file(path, inputs, create_folder=create_folder) as handle:
        handle.write(payload)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: PathLike, inputs: Iterable[PathLike] = (), *, create_folder: bool = False) -> Iterator[Path]:
    """A path for libraries that insist on a file name (an animation writer): write there, and
    the file replaces ``path`` when the block ends without an error.

    The path lies in a fresh private folder (``mkdtemp``: mode 0700, a new name) inside the
    target's folder, so nobody else can plant a link at it; the name is the target's own, so
    a writer that looks at the suffix sees the right one.
    """
    target = check_output(path, inputs, create_folder=create_folder)
    private = Path(tempfile.mkdtemp(prefix=f".{target.name[:_NAME_LIMIT]}.", suffix=".tmp", dir=target.parent))
    try:
        written = private / target.name
        yield written
        found = os.stat(written, follow_symlinks=False)
        if not stat.S_ISREG(found.st_mode):
            raise OutputError(f"{str(written)!r} is not a regular file; nothing was written to {str(target)!r}")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        descriptor = os.open(written, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        _keep_mode_of_path(written, target)
        os.replace(written, target)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    _sync_folder(target.parent)


def _keep_mode_of_path(written: Path, target: Path) -> None:
    """Like :func:`_keep_mode` for a file the library created (a new file keeps the library's mode)."""
    try:
        existing = os.stat(target, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISREG(existing.st_mode):
        os.chmod(written, stat.S_IMODE(existing.st_mode))

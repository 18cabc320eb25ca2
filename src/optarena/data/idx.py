"""Reader for the IDX format of LeCun, Cortes & Burges' MNIST files, plain or gzip-compressed.

An IDX file is a header and one array in C order, big-endian:

    bytes 0-1   zero
    byte  2     element type: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions n
    then        n sizes, each an unsigned 32-bit integer
    then        the elements

So the "magic number" of MNIST's images is 0x00000803 (unsigned bytes, three dimensions)
and of its labels 0x00000801. Every size is checked against the length of the file before
the data are read, and a compressed file is inflated no further than its header declares.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

ELEMENT_TYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype("u1")),
    0x09: ("signed byte", np.dtype("i1")),
    0x0B: ("int16", np.dtype(">i2")),
    0x0C: ("int32", np.dtype(">i4")),
    0x0D: ("float32", np.dtype(">f4")),
    0x0E: ("float64", np.dtype(">f8")),
}


class DataFormatError(ValueError):
    """A data file that is missing, truncated or not in the format expected; names the file."""


def describe(magic: int) -> str:
    """What an IDX magic number declares, e.g. ``"unsigned byte, 3 dimensions"``."""
    code = magic >> 8 & 0xFF
    name = ELEMENT_TYPES[code][0] if code in ELEMENT_TYPES else f"unknown type 0x{code:02X}"
    return f"{name}, {magic & 0xFF} dimensions"


DEFAULT_MAX_BYTES = 1 << 30
"""The largest array :func:`read_idx` reads unless told otherwise (1 GiB; MNIST's images are 47 MB)."""
DEFLATE_MAX_RATIO = 1032
"""Deflate cannot expand data more than about 1032-fold: a header that claims more than that
from the compressed file's size is a lie, refused before anything is inflated."""
CHUNK_BYTES = 1 << 20


def _gzip_error(path: Path, error: Exception) -> DataFormatError:
    return DataFormatError(f"{path}: not a complete gzip file ({error}); expected a gzip-compressed IDX file")


def _read_exactly(handle: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes (fewer only at the end of the stream)."""
    parts, missing = [], count
    while missing > 0:
        part = handle.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def _fill(handle: BinaryIO, array: np.ndarray) -> int:
    """Read into ``array`` in chunks of :data:`CHUNK_BYTES`; returns the bytes read (fewer at the end)."""
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        got = handle.readinto(view[done : done + CHUNK_BYTES])
        if not got:
            break
        done += got
    return done


def read_idx(path: str | Path, magic: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """The array stored in the IDX file ``path`` (``.gz`` is decompressed as it is read).

    ``magic`` is the expected first four bytes as a big-endian integer (e.g. 0x00000803 for
    MNIST's images); a :class:`DataFormatError` names the file and what differs. The header's
    sizes are checked before the data are read: against the file's length (plain files),
    against what deflate can hold (``.gz``) and against ``max_bytes``; a compressed body is
    inflated only up to the size the header declares, so memory stays bounded by it.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, possibly through the gzip reader
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a folder, not an IDX file") from None
    compressed = path.suffix == ".gz"
    stored = os.fstat(raw.fileno()).st_size
    handle: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    try:
        with raw, handle:
            return _read_idx(handle, path, magic, max_bytes, stored, compressed)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise _gzip_error(path, error) from None


def _read_idx(
    handle: BinaryIO, path: Path, magic: int | None, max_bytes: int, stored: int, compressed: bool
) -> np.ndarray:
    head = _read_exactly(handle, 4)
    if len(head) < 4:
        raise DataFormatError(f"{path}: {len(head)} bytes, too short for the 4-byte IDX magic number")
    found = struct.unpack(">I", head)[0]
    expected = f"; expected 0x{magic:08X}" if magic is not None else ""
    if head[0] != 0 or head[1] != 0 or head[2] not in ELEMENT_TYPES:
        raise DataFormatError(
            f"{path}: bad magic number 0x{found:08X}: not an IDX file (it must start with two zero bytes, "
            f"then an element type code among {', '.join(f'0x{c:02X}' for c in ELEMENT_TYPES)}){expected}"
        )
    if magic is not None and found != magic:
        raise DataFormatError(f"{path}: magic number 0x{found:08X} ({describe(found)}){expected} ({describe(magic)})")
    type_name, dtype = ELEMENT_TYPES[head[2]]
    ndim = head[3]
    header = 4 + 4 * ndim
    sizes = _read_exactly(handle, header - 4)
    if len(sizes) < header - 4:
        raise DataFormatError(
            f"{path}: truncated header: {4 + len(sizes)} bytes, but {ndim} dimensions need a {header}-byte header"
        )
    shape = struct.unpack(f">{ndim}I", sizes)
    count = math.prod(shape)
    data_bytes = count * dtype.itemsize
    size = header + data_bytes
    described = f"a {ndim}-dimensional {type_name} array of shape {'x'.join(map(str, shape))}"
    if data_bytes > max_bytes:
        raise DataFormatError(
            f"{path}: its header declares {described}, {data_bytes:,} bytes; at most {max_bytes:,} bytes are read "
            "(pass max_bytes to read a larger array)"
        )
    if math.prod(max(s, 1) for s in shape) * dtype.itemsize > sys.maxsize:  # numpy refuses such a shape, even empty
        raise DataFormatError(f"{path}: its header declares {described}, whose dimensions no array can span")
    if not compressed and stored != size:
        what = "truncated" if stored < size else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: {stored} bytes, but {described} needs {size} bytes ({header}-byte header + data)"
        )
    if compressed and size > DEFLATE_MAX_RATIO * stored + 1024:
        raise DataFormatError(
            f"{path}: truncated: its header declares {described} ({size:,} bytes), more than a {stored:,}-byte "
            "gzip file can hold"
        )
    array = np.empty(count, dtype=dtype)
    done = _fill(handle, array)
    if done < data_bytes:
        raise DataFormatError(
            f"{path}: truncated: it inflates to {header + done} bytes, but {described} needs {size} bytes "
            f"({header}-byte header + data)"
        )
    if handle.read(1):
        what = "it inflates to" if compressed else "it holds"
        raise DataFormatError(
            f"{path}: has trailing bytes: {what} more than the {size} bytes {described} needs "
            f"({header}-byte header + data)"
        )
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)

"""Reader for the IDX format of LeCun, Cortes & Burges' MNIST files, plain or gzip-compressed.

An IDX file is a header and one array in C order, big-endian:

    bytes 0-1   zero
    byte  2     element type: 0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
                0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions n
    then        n sizes, each an unsigned 32-bit integer
    then        the elements

So the "magic number" of MNIST's images is 0x00000803 (unsigned bytes, three dimensions)
and of its labels 0x00000801. Every size is checked against the length of the file.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

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


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in ``.gz``."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise DataFormatError(
            f"{path}: not a complete gzip file ({error}); expected a gzip-compressed IDX file"
        ) from None


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """The array stored in the IDX file ``path`` (``.gz`` is decompressed).

    ``magic`` is the expected first four bytes as a big-endian integer (e.g. 0x00000803 for
    MNIST's images); a :class:`DataFormatError` names the file and what differs.
    """
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{path}: {len(data)} bytes, too short for the 4-byte IDX magic number")
    found = struct.unpack(">I", data[:4])[0]
    expected = f"; expected 0x{magic:08X}" if magic is not None else ""
    if data[0] != 0 or data[1] != 0 or data[2] not in ELEMENT_TYPES:
        raise DataFormatError(
            f"{path}: bad magic number 0x{found:08X}: not an IDX file (it must start with two zero bytes, "
            f"then an element type code among {', '.join(f'0x{c:02X}' for c in ELEMENT_TYPES)}){expected}"
        )
    if magic is not None and found != magic:
        raise DataFormatError(f"{path}: magic number 0x{found:08X} ({describe(found)}){expected} ({describe(magic)})")
    type_name, dtype = ELEMENT_TYPES[data[2]]
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(
            f"{path}: truncated header: {len(data)} bytes, but {ndim} dimensions need a {header}-byte header"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = header + math.prod(shape) * dtype.itemsize
    if len(data) != size:
        what = "truncated" if len(data) < size else "has trailing bytes"
        raise DataFormatError(
            f"{path}: {what}: {len(data)} bytes, but a {ndim}-dimensional {type_name} array of shape "
            f"{'x'.join(map(str, shape))} needs {size} bytes ({header}-byte header + data)"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))

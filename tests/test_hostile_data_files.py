"""Data readers against hostile files: a clear DataFormatError, bounded memory, nothing on disk changed."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from data_files import idx_bytes, write_cifar10, write_mnist
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optarena.data.cifar10 import RECORD_BYTES, load_cifar10, read_batch
from optarena.data.idx import DataFormatError, read_idx
from optarena.data.mnist import load_mnist

MiB = 1 << 20


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: its size and, for small files, a hash of its bytes."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            size = path.stat().st_size
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if size < 64 * MiB else ""
            found[str(path.relative_to(folder))] = (size, digest)
    return found


def _peak_bytes(action) -> tuple[int, BaseException | None]:
    """The peak of memory traced while ``action()`` runs (numpy's arrays included), and what it raised."""
    tracemalloc.start()
    raised = None
    try:
        action()
    except Exception as error:  # returned for the caller to check
        raised = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def _gzip_bomb(path: Path, header: bytes, inflated: int) -> None:
    """A gzip file: ``header`` then ``inflated`` zero bytes, compressed as they are made."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    zeros = bytes(MiB)
    with open(path, "wb") as out:
        out.write(packer.compress(header))
        for _ in range(inflated // MiB):
            out.write(packer.compress(zeros))
        out.write(packer.flush())


def test_a_gzip_bomb_with_a_valid_header_fails_at_the_declared_size(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 10, 28, 28)  # 7,840 bytes of images
    _gzip_bomb(path, header, 96 * MiB)
    assert path.stat().st_size < MiB  # small on disk, 96 MiB inflated
    before = _snapshot(tmp_path)

    peak, raised = _peak_bytes(lambda: read_idx(path, 0x00000803))
    assert peak < 4 * MiB, f"{peak / MiB:.1f} MiB traced while reading a 96 MiB bomb"
    assert isinstance(raised, DataFormatError)
    assert str(path) in str(raised) and "has trailing bytes: it inflates to more than the 7856 bytes" in str(raised)
    assert _snapshot(tmp_path) == before


def test_a_header_claiming_more_than_deflate_can_hold_fails_before_inflating(tmp_path):
    path = tmp_path / "labels.gz"
    _gzip_bomb(path, bytes([0, 0, 0x08, 1]) + struct.pack(">I", 900_000_000), 0)  # 900 MB from ~40 bytes
    peak, raised = _peak_bytes(lambda: read_idx(path))
    assert isinstance(raised, DataFormatError) and "more than a" in str(raised) and "gzip file can hold" in str(raised)
    assert peak < MiB


def test_a_sparse_idx_file_larger_than_the_limit_fails_before_reading(tmp_path):
    path = tmp_path / "huge-idx"
    with open(path, "wb") as out:
        out.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2_000_000_000))
        out.truncate(8 + 2_000_000_000)  # sparse: 2 GB on paper, nothing on disk
    peak, raised = _peak_bytes(lambda: read_idx(path))
    assert isinstance(raised, DataFormatError)
    assert "2,000,000,000 bytes; at most 1,073,741,824 bytes are read (pass max_bytes" in str(raised)
    assert peak < MiB


@pytest.mark.parametrize("records", [650_000, None])
def test_a_sparse_2_gb_cifar_batch_fails_before_it_is_read(tmp_path, records):
    write_cifar10(tmp_path, per_file=1)
    path = tmp_path / "data_batch_3.bin"
    size = records * RECORD_BYTES if records else 2_000_000_000
    with open(path, "r+b") as handle:
        handle.truncate(size)
    before = _snapshot(tmp_path)

    peak, raised = _peak_bytes(lambda: load_cifar10(tmp_path))
    assert isinstance(raised, DataFormatError) and str(path) in str(raised)
    expected = "650,000 records; a batch file holds at most 10,000" if records else "is not a whole number of 3,073"
    assert expected in str(raised)
    assert peak < MiB
    assert _snapshot(tmp_path) == before


def test_a_truncated_gzip_body_names_both_sizes(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    full = idx_bytes(np.arange(100, dtype=np.uint8) % 10)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path.write_bytes(packer.compress(full[:60]) + packer.flush())  # a complete gzip file of too few bytes
    with pytest.raises(DataFormatError, match=r"truncated: it inflates to 60 bytes, but .* needs 108 bytes"):
        read_idx(path)


def test_a_folder_where_a_file_belongs_is_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    (tmp_path / "t10k-images-idx3-ubyte").mkdir()
    with pytest.raises(DataFormatError, match="missing t10k-images-idx3-ubyte"):
        load_mnist(tmp_path)  # a folder is not taken for the file
    with pytest.raises(DataFormatError, match="is a folder"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(DataFormatError, match="is a folder"):
        read_batch(tmp_path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=96), compress=st.booleans())
def test_any_short_file_is_an_array_or_a_data_format_error(tmp_path, data, compress):
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(_gzip(data) if compress else data)
    try:
        array = read_idx(path, max_bytes=4096)
    except DataFormatError as error:
        assert str(path) in str(error)
    else:
        assert array.nbytes <= 4096


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=4), body=st.integers(0, 64))
@example(shape=[0, 2**21, 2**21, 2**21], body=0)  # empty, but no array can have those dimensions
def test_any_declared_shape_is_checked_against_the_bytes_there(tmp_path, shape, body):
    path = tmp_path / "x.idx"
    path.write_bytes(bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + bytes(body))
    declared = int(np.prod(shape, dtype=object)) if shape else 1
    try:
        array = read_idx(path)
    except DataFormatError as error:
        assert (declared != body or "no array can span" in str(error)) and str(path) in str(error)
    else:
        assert declared == body and array.shape == tuple(shape)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 3 * RECORD_BYTES + 5), label=st.integers(0, 255))
def test_any_cifar_file_length_or_label_is_accepted_or_named(tmp_path, size, label):
    path = tmp_path / "batch.bin"
    data = bytearray(size)
    if size:
        data[0] = label
    path.write_bytes(bytes(data))
    try:
        images, labels = read_batch(path)
    except DataFormatError as error:
        assert str(path) in str(error)
        assert size == 0 or size % RECORD_BYTES or label >= 10
    else:
        assert size and size % RECORD_BYTES == 0 and label < 10 and len(images) == len(labels) == size // RECORD_BYTES


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()

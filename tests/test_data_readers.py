"""MNIST (IDX) and CIFAR-10 (binary batches) readers: round trips and one clear error per fault."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest
from data_files import CIFAR_NAMES, cifar_records, idx_bytes, write_cifar10, write_mnist

from optarena.data.cifar10 import load_cifar10, read_batch
from optarena.data.idx import DataFormatError, read_idx
from optarena.data.mnist import load_mnist

# -- IDX ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, code", [("u1", 0x08), ("i1", 0x09), ("i2", 0x0B), ("i4", 0x0C), ("f4", 0x0D), ("f8", 0x0E)]
)
def test_idx_round_trips_every_element_type(tmp_path, dtype, code):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / "array.idx"
    path.write_bytes(idx_bytes(array, code))
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.shape == (2, 3, 4)
    np.testing.assert_array_equal(read, array)


def test_idx_reads_gzip(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(5, 12)
    path = tmp_path / "array.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path, 0x00000802), array)


def _error(path, magic=None) -> str:
    with pytest.raises(DataFormatError) as caught:
        read_idx(path, magic)
    message = str(caught.value)
    assert str(path) in message  # every error names the file
    return message


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    assert "bad magic number 0x12340801" in _error(path, 0x00000801)


def test_idx_unknown_type_code(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    assert "element type code" in _error(path)


def test_idx_magic_of_the_wrong_kind(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 3), np.uint8)))
    message = _error(path, 0x00000801)
    assert "0x00000803 (unsigned byte, 3 dimensions); expected 0x00000801 (unsigned byte, 1 dimensions)" in message


def test_idx_truncated_data(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((4, 5), np.uint8))[:-3])
    message = _error(path)
    assert "truncated: 29 bytes" in message and "shape 4x5 needs 32 bytes (12-byte header + data)" in message


def test_idx_trailing_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((4, 5), np.uint8)) + b"\x00")
    assert "has trailing bytes: 33 bytes" in _error(path)


def test_idx_truncated_header_and_tiny_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 7))
    assert "truncated header: 8 bytes, but 3 dimensions need a 16-byte header" in _error(path)
    path.write_bytes(b"\x00\x00")
    assert "too short" in _error(path)


def test_idx_broken_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((40, 40), np.uint8)))[:-12])
    assert "not a complete gzip file" in _error(path)
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)))  # named .gz but not compressed
    assert "not a complete gzip file" in _error(path)


def test_idx_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "absent")


# -- MNIST --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path, gz):
    written = write_mnist(tmp_path, gz=gz)
    loaded = load_mnist(tmp_path)
    for split in ("train", "test"):
        np.testing.assert_array_equal(loaded[split][0], written[split][0])
        np.testing.assert_array_equal(loaded[split][1], written[split][1])
    assert loaded["train"][0].shape == (24, 28, 28) and loaded["test"][1].shape == (12,)


def test_mnist_found_in_torchvisions_layout(tmp_path):
    written = write_mnist(tmp_path / "MNIST" / "raw")
    np.testing.assert_array_equal(load_mnist(tmp_path)["test"][1], written["test"][1])


def test_mnist_missing_file_is_named(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataFormatError, match=r"missing t10k-labels-idx1-ubyte \(each may end in .gz\)"):
        load_mnist(tmp_path)


def test_mnist_empty_and_absent_directories(tmp_path):
    with pytest.raises(DataFormatError, match="No MNIST files in .*expected train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_mnist_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(23, np.uint8)))
    with pytest.raises(DataFormatError, match="holds 24 images but .*train-labels-idx1-ubyte holds 23 labels"):
        load_mnist(tmp_path)


def test_mnist_labels_must_be_digits(tmp_path):
    write_mnist(tmp_path)
    labels = np.zeros(12, np.uint8)
    labels[5] = 10
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataFormatError, match=r"label 10 at index 5; expected classes 0..9"):
        load_mnist(tmp_path)


def test_mnist_images_file_with_a_labels_header(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros(24, np.uint8)))
    with pytest.raises(DataFormatError, match=re.escape("expected 0x00000803")):
        load_mnist(tmp_path)


# -- CIFAR-10 -----------------------------------------------------------------------------


def test_cifar10_round_trip(tmp_path):
    written = write_cifar10(tmp_path / "cifar-10-batches-bin", per_file=3)
    loaded = load_cifar10(tmp_path)
    train_images = np.concatenate([written[name][0] for name in CIFAR_NAMES[:5]])
    np.testing.assert_array_equal(loaded["train"][0], train_images)
    np.testing.assert_array_equal(loaded["train"][1], np.concatenate([written[n][1] for n in CIFAR_NAMES[:5]]))
    np.testing.assert_array_equal(loaded["test"][0], written["test_batch.bin"][0])
    assert loaded["train"][0].shape == (15, 3, 32, 32) and loaded["test"][1].dtype == np.int64


def test_cifar10_pixel_layout_is_red_green_blue_planes(tmp_path):
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    path = tmp_path / "one.bin"
    path.write_bytes(record)
    images, labels = read_batch(path)
    assert labels.tolist() == [7]
    assert images[0, :, 5, 9].tolist() == [10, 20, 30]


def test_cifar10_size_not_a_whole_number_of_records(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(cifar_records(2, np.random.default_rng(0))[0][:-1])
    with pytest.raises(DataFormatError, match=r"data_batch_1.bin: 6145 bytes is not a whole number of 3,073-byte"):
        read_batch(path)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="0 bytes is not a whole number"):
        read_batch(path)


def test_cifar10_hints_at_cifar100(tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(bytes(3074 * 3))
    with pytest.raises(DataFormatError, match="CIFAR-100"):
        read_batch(path)


def test_cifar10_label_out_of_range(tmp_path):
    data = bytearray(cifar_records(3, np.random.default_rng(0))[0])
    data[2 * 3073] = 12
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="record 2 has label 12; expected classes 0..9"):
        read_batch(path)


def test_cifar10_missing_batch_is_named(tmp_path):
    write_cifar10(tmp_path, per_file=1)
    (tmp_path / "data_batch_4.bin").unlink()
    with pytest.raises(DataFormatError, match="missing data_batch_4.bin; expected data_batch_1.bin"):
        load_cifar10(tmp_path)


def test_cifar10_refuses_the_pickled_version(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x80\x04not read")
    with pytest.raises(DataFormatError, match=r"Python \(pickled\) version .* binary version"):
        load_cifar10(tmp_path)


def test_cifar10_empty_directory(tmp_path):
    with pytest.raises(DataFormatError, match="No CIFAR-10 binary files .*expected data_batch_1.bin"):
        load_cifar10(tmp_path)

"""The IDX reader/writer and the image-file checks, on small files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from infoae_pl.data import read_idx, write_idx
from infoae_pl.data.images import load_idx_images


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """IDX bytes built by hand, independently of ``write_idx``."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compressed", [False, True])
def test_read_hand_built_ubyte_images_and_labels(
    tmp_path: Path, images: np.ndarray, compressed: bool
) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for name, array in (("images", images), ("labels", labels)):
        data = idx_bytes(array)
        path = tmp_path / (f"{name}.gz" if compressed else name)
        path.write_bytes(gzip.compress(data) if compressed else data)
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.shape == array.shape
        np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "<i4", "f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_round_trip(tmp_path: Path, dtype: str, suffix: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = write_idx(tmp_path / f"a{suffix}", array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_write_matches_hand_built_bytes(tmp_path: Path, images: np.ndarray) -> None:
    assert write_idx(tmp_path / "x", images).read_bytes() == idx_bytes(images)
    big = np.array([[1, -2], [3, 4]], dtype=np.int16)
    assert write_idx(tmp_path / "y", big).read_bytes() == idx_bytes(big, code=0x0B)


@pytest.mark.parametrize("dtype", ["u2", "i8", "c8"])
def test_write_rejects_types_without_idx_code(tmp_path: Path, dtype: str) -> None:
    with pytest.raises(ValueError, match="has no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=dtype))


def test_gzip_detected_by_magic_bytes_not_suffix(tmp_path: Path, images: np.ndarray) -> None:
    (tmp_path / "gzipped.idx").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "raw.gz").write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(read_idx(tmp_path / "gzipped.idx"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), images)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-10], "truncated data"),
        (lambda b: b[:10], "truncated IDX header"),
        (lambda b: b[:3], "too short"),
        (lambda b: b + b"junk", "4 bytes of trailing garbage"),
        (lambda b: b"\x01" + b[1:], "bad IDX magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "bad IDX magic"),
        (lambda b: b[:3] + b"\x00" + b[4:], "bad IDX magic"),
        (lambda b: gzip.compress(b)[:-20], "gzip"),
    ],
)
def test_corrupt_files_raise_naming_file_and_problem(
    tmp_path: Path, images: np.ndarray, mangle, message
) -> None:
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(mangle(idx_bytes(images)))
    with pytest.raises(ValueError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_image_loader_checks_size_and_counts(tmp_path: Path, images: np.ndarray) -> None:
    labels = write_idx(tmp_path / "labels.gz", np.arange(5, dtype=np.uint8))
    good = write_idx(tmp_path / "good.gz", images)
    out_images, out_labels = load_idx_images(good, labels)
    assert out_images.shape == (5, 28, 28) and out_labels.dtype == np.int64

    wrong = write_idx(tmp_path / "wrong-size.gz", images[:, :27, :27])
    with pytest.raises(ValueError, match=r"28×28 pixels.*\(5, 27, 27\)") as err:
        load_idx_images(wrong, labels)
    assert "wrong-size.gz" in str(err.value)

    few = write_idx(tmp_path / "few-labels.gz", np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"5 images but .*few-labels.gz holds 4 labels"):
        load_idx_images(good, few)

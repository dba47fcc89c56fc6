"""The sample-quality metrics: calibrated on real MNIST images (held-out against training images is small;
noise, blur and fewer classes give increasing distances), checked against independent computations of the
Fréchet distance and the KID from the same features, and the classifier's cache."""

import copy
import dataclasses
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal

from infoae_pl.data import InfoAEDataModule
from infoae_pl.evaluation import (
    ClassifierSettings,
    EvaluationCallback,
    SampleQuality,
    class_coverage,
    load_or_train_classifier,
    settings_for,
)
from infoae_pl.evaluation.classifier import _data_hash
from infoae_pl.evaluation.quality import distances
from infoae_pl.nets.codes import FactorisedCode

#: Seconds of training on 2 cores; enough for a feature space that orders the degradations below.
QUICK = ClassifierSettings(steps=300, channels=8, hidden_dim=64, batch_size=64)
N = 500


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture(scope="module")
def classifier(cache):
    return load_or_train_classifier("mnist5k", QUICK, cache_dir=cache, verbose=False)


@pytest.fixture(scope="module")
def images():
    """(training images, their labels, held-out test images, their labels), grey levels in [0, 1]."""
    datamodule = InfoAEDataModule(dataset="mnist5k", binarize="none")
    datamodule.setup("fit")
    train, test = datamodule.train_dataloader().dataset, datamodule.test_dataloader().dataset
    return (train.values.reshape(len(train), -1).float() / 255, train.labels,
            test.values.reshape(len(test), -1).float() / 255, test.labels)


def _noisy(x, std, seed=0):
    return (x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def _blurred(x, size):
    return F.avg_pool2d(x.reshape(-1, 1, 28, 28), size, stride=1, padding=size // 2).reshape(len(x), -1)


def _of_classes(x, y, classes, n=N, seed=0):
    pool = x[torch.isin(y, torch.tensor(classes))]
    return pool[torch.randint(len(pool), (n,), generator=torch.Generator().manual_seed(seed))]


def test_the_classifier_is_accurate_and_cached_under_a_hash_of_settings_and_data(classifier, cache, capsys):
    assert classifier.test_accuracy > 0.85 and classifier.binarized_test_accuracy > 0.8
    assert classifier.path.parent == cache and classifier.path.name.startswith("mnist5k-classifier-")
    again = load_or_train_classifier("mnist5k", QUICK, cache_dir=cache)
    assert again.path == classifier.path and again.test_accuracy == classifier.test_accuracy
    assert "(cached)" in capsys.readouterr().out
    for key, value in again.model.state_dict().items():
        torch.testing.assert_close(value, classifier.model.state_dict()[key])
    tiny = ClassifierSettings(steps=2, channels=2, hidden_dim=4)
    first = load_or_train_classifier("mnist5k", tiny, cache_dir=cache, verbose=False)
    second = load_or_train_classifier("mnist5k", dataclasses.replace(tiny, steps=3), cache_dir=cache, verbose=False)
    assert len({first.path, second.path, classifier.path}) == 3 and all(
        p.exists() for p in (first.path, second.path, classifier.path))
    x, y = torch.rand(3, 784), torch.arange(3)
    assert _data_hash(QUICK, "mnist5k", x, y) != _data_hash(QUICK, "mnist5k", x, y.flip(0))  # labels enter the name
    assert _data_hash(QUICK, "mnist5k", x, y) != _data_hash(QUICK, "mnist5k", x.flip(0), y)  # and so do images


def test_loading_or_training_the_classifier_leaves_the_global_rng_alone(tmp_path):
    """A run draws the same numbers whether its classifier is trained now or read from the cache."""
    tiny = ClassifierSettings(steps=2, channels=2, hidden_dim=4)
    for path in ("trained", "cached"):
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        loaded = load_or_train_classifier("mnist5k", tiny, cache_dir=tmp_path, verbose=False)
        assert torch.equal(torch.rand(3), expected), path
    assert loaded.path.exists()


def test_the_classifier_trains_inside_inference_mode(tmp_path):
    """The evaluation callback asks for it in a validation hook, where Lightning runs under inference mode."""
    with torch.inference_mode():
        trained = load_or_train_classifier("mnist5k", ClassifierSettings(steps=2, channels=2, hidden_dim=4),
                                           cache_dir=tmp_path, verbose=False)
    assert trained.path.exists() and not any(p.is_inference() for p in trained.model.parameters())


def test_distances_grow_with_noise_blur_and_fewer_classes(classifier, images):
    train_x, train_y, test_x, _ = images
    reference = train_x[torch.randperm(len(train_x), generator=torch.Generator().manual_seed(1))[:N]]  # sorted by class
    model = classifier.model

    def score(x):
        return {k: v.item() for k, v in distances(model, test_x, x, kid_subsets=20).items()}

    real = score(reference)
    ladders = {
        "noise": [score(_noisy(reference, s)) for s in (0.15, 0.3, 0.6)],
        "blur": [score(_blurred(reference, k)) for k in (3, 5, 7)],
        "classes": [score(_of_classes(train_x, train_y, c)) for c in ([0, 1, 2, 3, 4], [3, 8], [1])],
    }
    for name, ladder in ladders.items():
        for metric in ("fid", "kid"):
            values = [real[metric]] + [step[metric] for step in ladder]
            assert values == sorted(values) and len(set(values)) == len(values), f"{name} {metric}: {values}"
            assert abs(real[metric]) < 0.1 * ladder[-1][metric], f"{name} {metric}: held-out vs training is not small"


def test_class_coverage_of_real_and_restricted_images(classifier, images):
    train_x, train_y, test_x, _ = images
    quality = SampleQuality(classifier.model)
    real = quality.coverage(test_x)
    assert real["class_coverage"].item() == 10 and real["class_kl"].item() < 0.1
    two_classes = _of_classes(train_x, train_y, [3, 8])
    two = quality.coverage(two_classes)
    # A quick classifier's errors may give stray classes 1% of the images each; none gets 10%.
    assert two["class_coverage"].item() < 10 and two["class_kl"].item() > math.log(10 / 4)
    assert SampleQuality(classifier.model, min_class_share=0.1).coverage(two_classes)["class_coverage"].item() == 2


def test_class_coverage_counts_classes_above_a_share_and_the_kl_from_uniform():
    predicted = torch.tensor([0] * 50 + [1] * 49 + [2] * 1)
    covered, kl = class_coverage(predicted, num_classes=4, min_share=0.02)
    assert covered == 2
    shares = np.array([0.5, 0.49, 0.01, 0.0])
    nonzero = shares[shares > 0]
    assert kl == pytest.approx(float(np.sum(nonzero * np.log(nonzero * 4))))
    assert class_coverage(torch.arange(4).repeat(5), 4) == (4, pytest.approx(0.0, abs=1e-12))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU features: a singular covariance
def test_fid_and_kid_equal_independent_computations_on_the_classifiers_features(classifier, images):
    """FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) by scipy's sqrtm on float64 features; KID with one subset
    holding every image is the unbiased MMD² with the kernel (aᵀb/d + 1)³ on the float32 features."""
    train_x, _, test_x, _ = images
    a, b = test_x[:300], _noisy(train_x[:300], 0.2)
    got = distances(classifier.model, a, b, kid_subset_size=300, kid_subsets=1)
    with torch.no_grad():
        double = copy.deepcopy(classifier.model.features).double().eval()
        fa, fb = double(a.double()).numpy(), double(b.double()).numpy()
        ka, kb = (classifier.model.features(x).double().numpy() for x in (a, b))
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    fid = np.sum((fa.mean(0) - fb.mean(0)) ** 2) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert got["fid"].item() == pytest.approx(fid, rel=1e-4, abs=1e-6)

    def mean_off_diagonal(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    d = ka.shape[1]
    kid = (mean_off_diagonal((ka @ ka.T / d + 1) ** 3) + mean_off_diagonal((kb @ kb.T / d + 1) ** 3)
           - 2 * ((ka @ kb.T / d + 1) ** 3).mean())
    assert got["kid"].item() == pytest.approx(kid, rel=1e-3)


class ReplayModel(nn.Module):
    """A 'generator' whose samples are a fixed bank of images, in order (z is ignored)."""

    def __init__(self, bank):
        super().__init__()
        self.bank = bank
        self.served = 0
        self.anchor = nn.Parameter(torch.zeros(1))

    def prior(self):
        return Independent(Normal(self.anchor.detach(), torch.ones(1)), 1)

    def sample_x(self, z):
        out = self.bank[self.served : self.served + len(z)]
        self.served += len(z)
        return out


def test_sample_quality_metric_compares_generated_with_the_real_batches(classifier, images):
    """Generating exactly the real images seen gives FID ≈ 0 and every class; ``max_examples`` caps both sides.
    (KID's unbiased estimate is not 0 for two copies of one set: it assumes independent samples.)"""
    _, _, test_x, _ = images
    test_x = test_x[torch.randperm(len(test_x), generator=torch.Generator().manual_seed(2))]  # sorted by class
    metric = SampleQuality(classifier.model, max_examples=400, kid_subset_size=100, kid_subsets=10)
    model = ReplayModel(test_x)
    for batch in test_x.split(150):
        metric.update(model, batch)
    values = metric.compute()
    assert model.served == 400
    assert values["fid"].item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(values["kid"].item()) and values["class_coverage"].item() == 10
    with pytest.raises(ValueError, match="max_examples must be >= 2"):
        SampleQuality(classifier.model, max_examples=1)


def test_classifier_settings_per_data_set_and_bad_options_named_before_any_work():
    assert settings_for("fashion_mnist").binarize_fraction == 0.0 and settings_for("mnist5k").binarize_fraction == 0.5
    assert settings_for("mnist5k", steps=7).steps == 7
    with pytest.raises(ValueError, match=r"classifier='maybe' is not supported; choose one of: auto, none"):
        EvaluationCallback(classifier="maybe")
    with pytest.raises(ValueError, match=r"classifier_settings: unknown field\(s\) \['stepz'\]; choose from: channels"):
        EvaluationCallback(classifier="auto", classifier_settings={"stepz": 10})
    with pytest.raises(ValueError, match=r"binarize_fraction must be in \[0, 1\]"):
        EvaluationCallback(classifier="auto", classifier_settings={"binarize_fraction": 2.0})
    with pytest.raises(ValueError, match=r"dataset='ring8' is not supported; choose one of: mnist, mnist5k, fashion_mnist"):
        load_or_train_classifier("ring8")


class CodedImagesModel(nn.Module):
    """An InfoGAN-like 'generator' of real held-out images: code k draws an image of class ``classes[k]``,
    or with probability ``mix`` one of class ``classes[(k + 1) % 10]``."""

    def __init__(self, x, y, classes, mix=0.0, seed=0):
        super().__init__()
        self.pools = [x[y == c] for c in range(10)]
        self.classes, self.mix = classes, mix
        self.generator = torch.Generator().manual_seed(seed)
        self.anchor = nn.Parameter(torch.zeros(1))

    def prior(self):
        return FactorisedCode.prior(2, 10, 0, like=self.anchor)

    def sample_x(self, z):
        code = z[:, 2:12].argmax(-1)
        shifted = torch.rand(len(z), generator=self.generator) < self.mix
        classes = self.classes[torch.where(shifted, (code + 1) % 10, code)]
        return torch.stack([self.pools[c][torch.randint(len(self.pools[c]), (1,), generator=self.generator)][0]
                            for c in classes.tolist()])


def test_code_purity_is_the_matched_agreement_of_codes_and_the_classifiers_labels(classifier, images):
    _, _, test_x, test_y = images
    permutation = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    pure = CodedImagesModel(test_x, test_y, permutation)
    quality = SampleQuality(classifier.model, max_examples=500)
    torch.manual_seed(0)
    for part in test_x[:500].split(200):
        quality.update(pure, part)
    got = quality.compute()
    # Independently: the classifier's labels of the second half against the class each code was drawn from.
    codes, generated = torch.cat(quality.codes), torch.cat(quality.generated)
    assert len(codes) == len(generated) == 500
    labels = classifier.model.predict(generated)[250:]
    assert got["code_purity"].item() == pytest.approx((labels == permutation[codes[250:]]).double().mean().item())
    assert got["code_purity"].item() > 0.85

    purities = []
    for mix in (0.25, 0.5):  # a code drawing a neighbour's class a quarter, then half of the time
        mixed = SampleQuality(classifier.model, max_examples=500)
        for part in test_x[:500].split(200):
            mixed.update(CodedImagesModel(test_x, test_y, permutation, mix=mix, seed=1), part)
        purities.append(mixed.compute()["code_purity"].item())
    assert got["code_purity"].item() > purities[0] > purities[1]
    assert purities[0] < 0.8 and purities[1] < 0.6


def test_a_model_without_a_categorical_code_has_no_code_purity(classifier, images):
    _, _, test_x, _ = images
    quality = SampleQuality(classifier.model, max_examples=100)
    quality.update(ReplayModel(test_x[100:200]), test_x[:100])
    assert "code_purity" not in quality.compute() and not quality.codes

"""Code accuracy under the best one-to-one matching of codes to classes, and 1-nearest-neighbour accuracy,
on synthetic cases whose answers are known by construction."""

import itertools

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from infoae_pl.evaluation import (
    MatchedCodeAccuracy,
    NearestNeighbourAccuracy,
    best_matching,
    matched_accuracy,
    nearest_neighbour_accuracy,
)
from infoae_pl.nets.codes import FactorisedCode


def _pairs(confusion):
    """(codes, labels) with confusion[c][k] examples of code c and label k."""
    codes, labels = [], []
    for c, row in enumerate(confusion):
        for k, count in enumerate(row):
            codes += [c] * count
            labels += [k] * count
    return torch.tensor(codes), torch.tensor(labels)


def test_a_permuted_labelling_scores_one():
    labels = torch.randint(0, 10, (500,))
    permutation = torch.randperm(10)
    codes = permutation[labels]
    assert matched_accuracy(codes[:300], labels[:300], codes[300:], labels[300:], 10, 10) == 1.0
    confusion = torch.zeros(10, 10)
    confusion[permutation, torch.arange(10)] = 30.0  # code permutation[k] for every image of class k
    assert torch.equal(best_matching(confusion), torch.argsort(permutation))  # code c -> the class it came from


def test_a_known_confusion_matrix_gives_its_optimal_matching_not_the_greedy_one():
    """Greedy takes code 0 -> class 0 (9) and then code 1 has nothing left (0): 14 of 30. The best one-to-one
    matching is 0 -> 1, 1 -> 0, 2 -> 2: 8 + 8 + 5 = 21 of 30."""
    confusion = [[9, 8, 0], [8, 0, 0], [0, 0, 5]]
    codes, labels = _pairs(confusion)
    assert best_matching(torch.tensor(confusion)).tolist() == [1, 0, 2]
    assert matched_accuracy(codes, labels, codes, labels, 3, 3) == pytest.approx(21 / 30)
    brute = max(sum(confusion[c][k] for c, k in enumerate(p)) for p in itertools.permutations(range(3)))
    assert brute == 21


def test_the_matching_is_fitted_on_one_split_and_scored_on_the_other():
    """Fitted where codes are labels shifted by one; on the scored split 3 of 4 codes follow that shift and one
    does not: accuracy 3/4, though the scored split alone would match all four."""
    fit_labels = torch.arange(4).repeat(10)
    fit_codes = (fit_labels + 1) % 4
    labels = torch.arange(4)
    codes = torch.tensor([1, 2, 3, 3])  # the last should be 0 under the fitted matching
    assert matched_accuracy(fit_codes, fit_labels, codes, labels, 4, 4) == 0.75


def test_more_codes_than_classes_leave_a_code_unmatched_and_wrong():
    fit_codes, fit_labels = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1])
    mapping = best_matching(torch.tensor([[2, 0], [0, 1], [0, 1]]))
    assert mapping[0] == 0 and sorted(mapping[1:].tolist()) == [-1, 1]
    assert matched_accuracy(fit_codes, fit_labels, fit_codes, fit_labels, 3, 2) == 0.75


def test_nearest_neighbour_accuracy_on_points_with_known_neighbours():
    fit = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    fit_labels = torch.tensor([0, 1, 2])
    queries = torch.tensor([[1.0, 1.0], [9.0, 1.0], [1.0, 9.0], [6.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])  # the third query's neighbour is class 2: 3 of 4 right
    assert nearest_neighbour_accuracy(fit, fit_labels, queries, labels, chunk_size=3) == 0.75


class PermutedCodeModel(nn.Module):
    """A hand-built 'InfoGAN' whose Q reads the label written in an image's first pixels, through a permutation."""

    def __init__(self, permutation):
        super().__init__()
        self.permutation = permutation
        self.scale = nn.Parameter(torch.tensor(1.0))

    def prior(self):
        return FactorisedCode.prior(0, len(self.permutation), 1, like=self.scale)

    def encode(self, x):
        label = x[:, : len(self.permutation)].argmax(-1)
        logits = 5.0 * torch.eye(len(self.permutation))[self.permutation[label]]
        return FactorisedCode(0, logits, Normal(x[:, -1:] * self.scale, torch.ones(len(x), 1)))


def _labelled_images(n, classes=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    x = torch.rand(n, 784, generator=generator) * 0.1
    x[torch.arange(n), labels] = 1.0
    return x, labels


def test_the_metrics_read_a_models_posterior_on_held_out_images():
    permutation = torch.randperm(10)
    model = PermutedCodeModel(permutation)
    fit_x, fit_y = _labelled_images(200, seed=1)
    x, y = _labelled_images(60, seed=2)
    metric = MatchedCodeAccuracy(fit_x, fit_y, num_classes=10, max_examples=50)
    for part_x, part_y in zip(x.split(25), y.split(25)):
        metric.update(model, part_x, part_y)
    assert metric.compute()["code_accuracy_real"].item() == 1.0
    wrong = y.clone()
    wrong[:10] = (wrong[:10] + 1) % 10  # 10 of the 50 kept labels contradict the code
    metric = MatchedCodeAccuracy(fit_x, fit_y, num_classes=10, max_examples=50)
    metric.update(model, x, wrong)
    assert metric.compute()["code_accuracy_real"].item() == pytest.approx(40 / 50)

    neighbours = NearestNeighbourAccuracy(fit_x, fit_y)
    neighbours.update(model, x, y)
    values = neighbours.compute()
    # The posterior mean (softmax of the code, the last pixel) puts every image next to its own class.
    assert values["feature_accuracy"].item() == 1.0
    assert values["pixel_accuracy"].item() == 1.0  # the label pixel dominates the Euclidean distance too

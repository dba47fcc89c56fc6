"""The toy mixtures: fresh seeded batches, fixed evaluation sets, moments, density and entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from infoae_pl.data import InfoAEDataModule, mog1d, ring8


def take(loader, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [batch for _, batch in zip(range(n), loader)]


def test_mog1d_description_and_batch_shapes() -> None:
    dm = InfoAEDataModule(dataset="mog1d", batch_size=32, steps_per_epoch=7)
    assert (dm.data_dim, dm.data_shape, dm.likelihood, dm.binarize) == (1, (1,), "gaussian", "none")
    assert dm.mode_std == 0.5 and dm.mode_centres.tolist() == [[-1.0], [1.0]]
    dm.setup("fit")
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 7
    x, y = batches[0]
    assert x.shape == (32, 1) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64 and set(y.tolist()) <= {0, 1}
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        xs, ys = map(torch.cat, zip(*loader))
        assert xs.shape == (2500, 1) and ys.shape == (2500,)


def test_same_seed_same_batches_fresh_each_step() -> None:
    def batches(seed: int) -> list[torch.Tensor]:
        dm = InfoAEDataModule(dataset="mog1d", seed=seed, batch_size=16, steps_per_epoch=3)
        dm.setup()
        loader = dm.train_dataloader()
        return [x for epoch in range(2) for x, _ in loader] + [next(iter(dm.val_dataloader()))[0]]

    first, again, other = batches(0), batches(0), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first, other))
    train = first[:-1]
    assert len({tuple(x.flatten().tolist()) for x in train}) == 6  # new data every step and epoch


def test_val_and_test_sets_are_fixed_and_distinct() -> None:
    dm = InfoAEDataModule(dataset="mog1d", val_size=100, test_size=50, batch_size=1000)
    dm.setup()
    val, again = next(iter(dm.val_dataloader())), next(iter(dm.val_dataloader()))
    test = next(iter(dm.test_dataloader()))
    assert torch.equal(val[0], again[0]) and val[0].shape == (100, 1) and test[0].shape == (50, 1)
    assert not torch.equal(val[0][:50], test[0])


def test_mog1d_moments_and_components() -> None:
    dm = InfoAEDataModule(dataset="mog1d", batch_size=1000, steps_per_epoch=100)
    dm.setup()
    x, y = map(torch.cat, zip(*dm.train_dataloader()))
    x = x.double().squeeze(1)
    assert abs(x.mean()) < 0.015  # standard error 0.0035
    assert abs(x.var() - 1.25) < 0.03  # variance 1 (between modes) + 0.25 (within)
    assert abs(y.double().mean() - 0.5) < 0.02
    assert abs(x[y == 0].mean() + 1) < 0.02 and abs(x[y == 1].mean() - 1) < 0.02
    assert abs(x[y == 1].std() - 0.5) < 0.02


def q_mog1d(x: np.ndarray) -> np.ndarray:
    return 0.5 * stats.norm.pdf(x, -1, 0.5) + 0.5 * stats.norm.pdf(x, 1, 0.5)


def test_mog1d_log_prob_matches_scipy() -> None:
    x = np.linspace(-4, 4, 81)
    ours = mog1d().log_prob(torch.from_numpy(x).unsqueeze(1)).numpy()
    np.testing.assert_allclose(ours, np.log(q_mog1d(x)), rtol=1e-10)


def test_mog1d_entropy_against_monte_carlo() -> None:
    entropy = InfoAEDataModule(dataset="mog1d").data_entropy
    rng = np.random.default_rng(123)
    n = 1_000_000
    samples = rng.choice([-1.0, 1.0], size=n) + 0.5 * rng.standard_normal(n)
    log_q = np.log(q_mog1d(samples))
    assert abs(entropy - (-log_q.mean())) < 0.01  # standard error ~0.0007
    assert entropy == pytest.approx(1.36, abs=0.005)


def test_ring8_modes_samples_and_entropy() -> None:
    dm = InfoAEDataModule(dataset="ring8", batch_size=4000, steps_per_epoch=1)
    assert (dm.data_dim, dm.data_shape, dm.likelihood, dm.mode_std) == (2, (2,), "gaussian", 0.02)
    centres = dm.mode_centres
    assert centres.shape == (8, 2)
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(centres[:, 1], centres[:, 0]).remainder(2 * math.pi).sort().values
    torch.testing.assert_close(angles.diff(), torch.full((7,), math.pi / 4))

    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4000, 2) and torch.bincount(y, minlength=8).min() > 350
    residual = x - centres[y]
    assert residual.abs().max() < 0.02 * 6 and abs(residual.std() - 0.02) < 0.002

    points = x[:5000].double().numpy()
    log_q = np.log(
        np.mean(
            [stats.multivariate_normal(c, 0.02**2 * np.eye(2)).pdf(points) for c in centres.numpy()], axis=0
        )
    )
    assert abs(dm.data_entropy - (-log_q.mean())) < 0.05
    assert dm.data_entropy == pytest.approx(math.log(8) + math.log(2 * math.pi * math.e * 0.02**2))


def test_ring8_log_prob_matches_scipy() -> None:
    mixture = ring8()
    generator = torch.Generator().manual_seed(0)
    points = mixture.centres[torch.arange(20) % 8] + 0.05 * torch.randn(20, 2, generator=generator)
    densities = [
        stats.multivariate_normal(c, 0.02**2 * np.eye(2)).pdf(points.numpy()) for c in mixture.centres.numpy()
    ]
    expected = np.log(np.mean(densities, axis=0))
    np.testing.assert_allclose(mixture.log_prob(points).numpy(), expected, rtol=1e-6)


def test_workers_draw_distinct_reproducible_batches() -> None:
    def run() -> list[torch.Tensor]:
        dm = InfoAEDataModule(dataset="ring8", batch_size=8, steps_per_epoch=6, num_workers=2)
        dm.setup()
        loader = dm.train_dataloader()
        return [x for _ in range(2) for x, _ in loader]

    first = run()
    assert len(first) == 12
    assert len({tuple(x.flatten().tolist()) for x in first}) == 12
    assert all(torch.equal(a, b) for a, b in zip(first, run()))


@pytest.mark.parametrize("binarize", ["dynamic", "static"])
def test_toys_accept_only_binarize_none(binarize: str) -> None:
    with pytest.raises(ValueError, match=r"binarize='.*'.*choose one of: none"):
        InfoAEDataModule(dataset="mog1d", binarize=binarize)
    assert InfoAEDataModule(dataset="ring8", binarize="none").binarize == "none"


def test_toys_reject_train_size() -> None:
    with pytest.raises(ValueError, match=r"train_size does not apply.*steps_per_epoch"):
        InfoAEDataModule(dataset="mog1d", train_size=100)

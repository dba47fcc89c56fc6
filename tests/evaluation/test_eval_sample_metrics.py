"""Sample-based metrics: MMD between generated and real x, reconstruction error and ring mode coverage."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from infoae_pl.data.toy import ring8
from infoae_pl.divergences.mmd import mmd
from infoae_pl.evaluation import GeneratedDataMMD, ModeCoverage, ReconstructionError, generate


class AffineGenerator(nn.Module):
    """z ~ N(0, I_2) and sample_x(z) = shift + scale·z: an implicit generator of N(shift, scale² I)."""

    def __init__(self, shift: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        self.shift, self.scale = shift, scale

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        return self.shift + self.scale * z


class NoMean(Distribution):
    """A point mass with ``sample`` but no ``mean`` (like a custom implicit posterior)."""

    arg_constraints: ClassVar[dict[str, Any]] = {}

    def __init__(self, value: Tensor) -> None:
        self.value = value
        super().__init__(value.shape[:1], value.shape[1:], validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        return self.value.expand(*sample_shape, *self.value.shape)


class ScaledAutoencoder(nn.Module):
    """q(z|x) centred on a·x, p(x|z) = N(2z, 1) and sample_x(z) = z + 1: the two decodings differ."""

    def __init__(self, a: float, has_likelihood: bool = True, posterior_mean: bool = True) -> None:
        super().__init__()
        self.a, self.has_likelihood, self.posterior_mean = a, has_likelihood, posterior_mean

    def encode(self, x: Tensor) -> Distribution:
        if self.posterior_mean:
            return Independent(Normal(self.a * x, torch.ones_like(x)), 1)
        return NoMean(self.a * x)

    def decode(self, z: Tensor) -> Distribution:
        return Independent(Normal(2 * z, torch.ones_like(z)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        return z + 1


class RingModeEmitter(nn.Module):
    """Emits ring modes 0, 2 and 5 in turn, deterministically: of every 5 samples 4 lie within 2.5 std of
    their mode (high quality) and the 5th at 3.5 std (nearest that mode, but not high quality)."""

    def __init__(self, modes: tuple[int, ...] = (0, 2, 5), far_every: int | None = 5) -> None:
        super().__init__()
        ring = ring8()
        self.centres, self.std, self.modes, self.far_every = ring.centres, ring.std, modes, far_every

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(1), torch.ones(1)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        index = torch.arange(len(z))
        centres = self.centres[torch.tensor(self.modes)[index % len(self.modes)]]
        radius = torch.full((len(z), 1), 2.5 * self.std)
        if self.far_every is not None:
            radius[index % self.far_every == self.far_every - 1] = 3.5 * self.std
        direction = torch.tensor([0.6, 0.8])  # a unit vector
        return centres + radius * direction


def test_generated_data_mmd_is_the_biased_mmd_of_the_kept_and_generated_samples() -> None:
    model = AffineGenerator(shift=0.3, scale=1.2)
    x = torch.randn(70, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    metric = GeneratedDataMMD(max_examples=50, chunk_size=7)
    torch.manual_seed(3)
    for batch in x.split(20):
        metric.update(model, batch)
    torch.manual_seed(3)
    generated = torch.cat([model.sample_x(model.prior().sample(torch.Size([n]))) for n in (20, 20, 10)])
    assert sum(len(kept) for kept in metric.real) == 50
    torch.testing.assert_close(metric.compute(), mmd(x[:50], generated), rtol=1e-10, atol=1e-12)


def test_generated_data_mmd_is_near_zero_for_the_data_distribution_and_large_for_a_shifted_one() -> None:
    x = 0.5 + torch.randn(1000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(0)
    values = {}
    for name, model in (("exact", AffineGenerator(0.5)), ("shifted", AffineGenerator(2.0))):
        metric = GeneratedDataMMD(max_examples=1000)
        for batch in x.split(250):
            metric.update(model, batch)
        values[name] = metric.compute().item()
    assert 0.0 <= values["exact"] < 0.005
    assert values["shifted"] > 0.1


@pytest.mark.parametrize(
    ("has_likelihood", "posterior_mean", "expected_xhat"),
    [
        (True, True, lambda x: 2 * 0.5 * x),  # decoder mean at the posterior mean
        (False, True, lambda x: 0.5 * x + 1),  # sample_x at the posterior mean
        (False, False, lambda x: 0.5 * x + 1),  # no posterior mean: one draw (here a point mass)
    ],
    ids=["decoder_mean", "sample_x", "posterior_without_mean"],
)
def test_reconstruction_error_matches_a_hand_computation(
    has_likelihood, posterior_mean, expected_xhat
) -> None:
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    metric = ReconstructionError()
    for batch in x.split(8):
        metric.update(ScaledAutoencoder(0.5, has_likelihood, posterior_mean), batch)
    expected = (x - expected_xhat(x)).square().sum(-1).mean()
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=1e-12)


def test_reconstruction_error_is_zero_for_an_identity_autoencoder() -> None:
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(3))
    metric = ReconstructionError()
    metric.update(ScaledAutoencoder(0.5), x)  # x̂ = 2·(0.5·x) = x
    assert metric.compute().item() == 0.0


def test_mode_coverage_counts_hit_modes_and_high_quality_samples_once_per_evaluation() -> None:
    model = RingModeEmitter()
    ring = ring8()
    metric = ModeCoverage(ring.centres, ring.std, num_samples=2500)
    for _ in range(3):  # only the first update generates
        metric.update(model, torch.zeros(4, 2))
    assert metric.count.item() == 2500
    values = metric.compute()
    assert set(values) == {"modes_hit", "high_quality_fraction", "mode_kl"}
    assert values["modes_hit"].item() == 3
    assert values["high_quality_fraction"].item() == pytest.approx(0.8, abs=1e-12)  # 4 in every 5
    assert values["mode_kl"].item() == pytest.approx(math.log(8 / 3), abs=1e-5)  # 667/667/666 of 2000


def test_mode_coverage_without_high_quality_samples_and_with_one_mode() -> None:
    ring = ring8()
    far = ModeCoverage(ring.centres, ring.std, num_samples=100, quality_stds=2.0)  # 2.5 std is too far
    far.update(RingModeEmitter(far_every=None), torch.zeros(1, 2))
    single = ModeCoverage(ring.centres, ring.std, num_samples=100)
    single.update(RingModeEmitter(modes=(4,), far_every=None), torch.zeros(1, 2))
    expected = {
        far: {"modes_hit": 0.0, "high_quality_fraction": 0.0, "mode_kl": math.log(8)},
        single: {"modes_hit": 1.0, "high_quality_fraction": 1.0, "mode_kl": math.log(8)},
    }
    for metric, values in expected.items():
        assert {key: value.item() for key, value in metric.compute().items()} == pytest.approx(values)


def test_mode_coverage_sums_its_counts_like_a_ddp_reduction() -> None:
    ring = ring8()
    first, second = (ModeCoverage(ring.centres, ring.std, num_samples=500) for _ in range(2))
    first.update(RingModeEmitter(), torch.zeros(1, 2))
    second.update(RingModeEmitter(modes=(1,)), torch.zeros(1, 2))
    first.merge_state(second)
    values = first.compute()
    assert values["modes_hit"].item() == 4 and first.count.item() == 1000
    assert values["high_quality_fraction"].item() == pytest.approx(0.8)


class BernoulliPixels(nn.Module):
    """z ~ N(0, 1) and p(x|z) = Bernoulli(sigmoid(z)) on 4 pixels: grey means, binary draws."""

    def prior(self) -> Distribution:
        return Independent(Normal(torch.zeros(1), torch.ones(1)), 1)

    def decode(self, z: Tensor) -> Distribution:
        return Independent(Bernoulli(logits=z.expand(-1, 4)), 1)

    def sample_x(self, z: Tensor) -> Tensor:
        return self.decode(z).sample()


def test_generated_images_are_of_the_real_images_kind_binary_draws_or_grey_means() -> None:
    model, count = BernoulliPixels(), 300
    binary = generate(model, count, like=torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    torch.manual_seed(0)
    grey = generate(model, count, like=torch.tensor([[0.0, 0.5, 1.0, 0.2]]))
    torch.manual_seed(0)
    z = model.prior().sample(torch.Size([count]))
    torch.testing.assert_close(grey, torch.sigmoid(z).expand(-1, 4))
    assert set(generate(model, count).unique().tolist()) == {0.0, 1.0}  # no real images: a draw, as before

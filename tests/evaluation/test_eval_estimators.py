"""Estimators against closed forms of the linear-Gaussian model."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from infoae_pl.evaluation import (
    aggregate_posterior_mi,
    barber_agakov_mi,
    elbo,
    importance_sampled_log_likelihood,
    prior_sampled_log_likelihood,
    quadrature_log_likelihood,
)


def test_importance_sampling_is_exact_with_the_true_posterior(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(data_dim=5, latent_dim=2, scales=[1.5, 0.7])
    x = model.sample_data(16)
    estimate = importance_sampled_log_likelihood(model, x, num_samples=3, chunk_size=5)
    assert estimate.dtype == torch.float64 and estimate.shape == (16,)
    torch.testing.assert_close(estimate, model.marginal().log_prob(x), rtol=1e-10, atol=1e-10)


def test_importance_sampling_with_an_imperfect_posterior_converges(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(
        data_dim=4, latent_dim=2, scales=[1.2, 0.8], posterior_shift=0.3, posterior_scale=1.4
    )
    x = model.sample_data(20)
    exact = model.marginal().log_prob(x)
    estimate = importance_sampled_log_likelihood(model, x, num_samples=5000, chunk_size=20_000)
    assert (estimate - exact).abs().mean() < 0.015 and (estimate - exact).abs().max() < 0.04
    one_sample = importance_sampled_log_likelihood(model, x, num_samples=1)
    assert (exact - one_sample).mean() > 0.3  # K = 1 is the (loose) ELBO


def test_prior_sampling_matches_the_marginal_for_a_1d_latent(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(data_dim=2, latent_dim=1, scales=[1.0], noise_std=0.6)
    x = model.sample_data(10)
    estimate = prior_sampled_log_likelihood(model, x, num_samples=25_000)
    assert (estimate - model.marginal().log_prob(x)).abs().max() < 0.03


def test_quadrature_matches_the_marginal_and_needs_a_1d_latent(make_linear_gaussian) -> None:
    model = make_linear_gaussian(data_dim=3, latent_dim=1, scales=[2.0], noise_std=0.2)
    x = model.sample_data(10)
    estimate = quadrature_log_likelihood(model, x, grid_size=4001, z_range=(-9.0, 9.0), chunk_size=333)
    torch.testing.assert_close(estimate, model.marginal().log_prob(x), rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="1-D latent"):
        quadrature_log_likelihood(make_linear_gaussian(data_dim=3, latent_dim=2), x)


@pytest.mark.parametrize(
    "estimator",
    [
        lambda m, x, c: importance_sampled_log_likelihood(m, x, num_samples=50, chunk_size=c),
        lambda m, x, c: prior_sampled_log_likelihood(m, x, num_samples=300, chunk_size=c),
        lambda m, x, c: elbo(m, x, num_samples=9, chunk_size=c),
        lambda m, x, c: barber_agakov_mi(m, x, data_entropy=1.0, num_samples=9, chunk_size=c),
        lambda m, x, c: aggregate_posterior_mi(m, x, num_samples=2, chunk_size=c),
    ],
    ids=["importance", "prior", "elbo", "barber_agakov", "aggregate_mi"],
)
def test_chunk_size_does_not_change_results(make_linear_gaussian, estimator) -> None:
    model = make_linear_gaussian(data_dim=4, latent_dim=2, posterior_shift=0.2, posterior_scale=1.3)
    x = model.sample_data(12)
    results = []
    for chunk_size in (7, 1000):
        torch.manual_seed(123)
        results.append(estimator(model, x, chunk_size))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-12)


class _RecordingModel:
    """Wraps a model and records the latent shapes passed to ``decode``."""

    def __init__(self, model) -> None:
        self.model, self.decoded = model, []

    def prior(self):
        return self.model.prior()

    def encode(self, x):
        return self.model.encode(x)

    def decode(self, z):
        self.decoded.append(tuple(z.shape))
        return self.model.decode(z)


def test_decoder_calls_stay_within_the_chunk(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = _RecordingModel(make_linear_gaussian(data_dim=3, latent_dim=2))
    x = model.model.sample_data(10)
    importance_sampled_log_likelihood(model, x, num_samples=1000, chunk_size=64)
    assert max(shape[0] for shape in model.decoded) == 6  # 64 pairs // 10 examples
    assert all(math.prod(shape[:-1]) <= 64 for shape in model.decoded)
    model.decoded.clear()
    prior_sampled_log_likelihood(model, x, num_samples=1000, chunk_size=64)
    # Prior samples are shared by the batch: each z is decoded once, never once per x.
    assert sum(shape[0] for shape in model.decoded) == 1000
    assert all(shape[1:] == (1, 2) and shape[0] <= 6 for shape in model.decoded)


def test_elbo_is_the_marginal_minus_the_posterior_gap(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(data_dim=4, latent_dim=2, posterior_shift=0.4, posterior_scale=0.7)
    x = model.sample_data(8)
    gap = kl_divergence(model.encode(x), model.exact_posterior(x))
    expected = model.marginal().log_prob(x) - gap
    estimate = elbo(model, x, num_samples=20_000, chunk_size=50_000)
    assert (estimate - expected).abs().max() < 0.05
    assert (estimate < model.marginal().log_prob(x)).all()


def test_aggregate_posterior_mi_matches_the_gaussian_channel(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(data_dim=4, latent_dim=2, scales=[1.0, 0.5], noise_std=0.5)
    true_mi = model.mutual_information()  # ½ (log 5 + log 2) ≈ 1.151
    assert true_mi == pytest.approx(0.5 * math.log(10.0))
    estimate = aggregate_posterior_mi(model, model.sample_data(3000), chunk_size=100_000).mean().item()
    assert estimate == pytest.approx(true_mi, abs=0.06)


def test_barber_agakov_bound_is_tight_only_for_the_exact_decoder(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    model = make_linear_gaussian(data_dim=4, latent_dim=2, scales=[1.0, 0.5], noise_std=0.5)
    x = model.sample_data(4000)
    entropy = model.marginal().entropy().item()
    true_mi = model.mutual_information()
    tight = barber_agakov_mi(model, x, entropy, num_samples=4).mean().item()
    assert tight == pytest.approx(true_mi, abs=0.06)
    wrong = make_linear_gaussian(data_dim=4, latent_dim=2, scales=[1.0, 0.5], noise_std=0.5, decoder_std=1.0)
    loose = barber_agakov_mi(wrong, x, entropy, num_samples=4).mean().item()
    assert loose <= true_mi + 0.06
    assert loose < true_mi - 0.5


def test_the_fused_bernoulli_log_density_equals_torchs() -> None:
    """``log_likelihood`` on Bernoulli logits (binary and grey-level x, broadcast over samples and a shared
    z axis) agrees with ``Distribution.log_prob``; other distributions go through ``log_prob`` itself."""
    from torch.distributions import Bernoulli, Independent, Normal

    from infoae_pl.evaluation.estimators import log_likelihood

    torch.manual_seed(0)
    logits = 4 * torch.randn(5, 3, 20, dtype=torch.float64)
    for x in (torch.bernoulli(torch.full((3, 20), 0.4, dtype=torch.float64)), torch.rand(3, 20, dtype=torch.float64)):
        decoded = Independent(Bernoulli(logits=logits, validate_args=False), 1)
        torch.testing.assert_close(log_likelihood(decoded, x), decoded.log_prob(x), rtol=1e-12, atol=1e-10)
        shared = Independent(Bernoulli(logits=logits[:, :1], validate_args=False), 1)  # [5, 1, 20] against 3 x
        torch.testing.assert_close(log_likelihood(shared, x), shared.log_prob(x), rtol=1e-12, atol=1e-10)
    probs = Independent(Bernoulli(probs=torch.rand(3, 20, dtype=torch.float64)), 1)
    x = torch.bernoulli(torch.full((3, 20), 0.5, dtype=torch.float64))
    assert torch.equal(log_likelihood(probs, x), probs.log_prob(x))
    gaussian = Independent(Normal(torch.zeros(3, 20), torch.ones(3, 20)), 1)
    assert torch.equal(log_likelihood(gaussian, x.float()), gaussian.log_prob(x.float()))

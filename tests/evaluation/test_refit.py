"""The re-fitted posterior: with a deliberately poor encoder it raises the ELBO and the importance-sampled
bound toward the closed-form log p(x), leaves the decoder untouched, and serves only its own images."""

from __future__ import annotations

import math

import pytest
import torch

from infoae_pl.evaluation import (
    ImportanceSampledNLL,
    elbo,
    importance_sampled_log_likelihood,
    refit_posterior,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors in a loop of Adam steps: one thread (see test_ais.py); the suite's setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_refitting_a_poor_encoder_improves_the_elbo_and_the_importance_sampled_bound(make_linear_gaussian) -> None:
    """The encoder's mean is off by 1 (≈ 4 posterior sds) and its sd 3x too wide. The exact posterior is a
    diagonal Gaussian, so the per-image refit can reach it: the ELBO rises to log p(x) and importance
    sampling with the refitted q is then (nearly) exact, while with the encoder it stays below."""
    model = make_linear_gaussian(
        data_dim=12, latent_dim=4, scales=[1.0, 1.2, 0.9, 1.4], noise_std=0.3, posterior_shift=1.0, posterior_scale=3.0
    ).requires_grad_(False)
    x = model.sample_data(40)
    truth = model.marginal().log_prob(x)
    refitted = refit_posterior(model, x, steps=300, lr=0.05)

    amortised_elbo, refit_elbo = elbo(model, x, num_samples=200), elbo(refitted, x, num_samples=200)
    assert bool((refit_elbo >= amortised_elbo).all())
    assert (truth - refit_elbo).mean().item() < 0.05  # the ELBO's gap is KL(q || p(z|x)) ≈ 0
    assert (truth - amortised_elbo).mean().item() > 5.0
    exact = model.exact_posterior(x)
    assert (refitted.loc - exact.mean).abs().max().item() < 0.1
    assert (refitted.log_scale.exp() / exact.stddev - 1).abs().max().item() < 0.25

    amortised_is = importance_sampled_log_likelihood(model, x, 200)
    refit_is = importance_sampled_log_likelihood(refitted, x, 200)
    noise = 3 * (refit_is - amortised_is).std().item() / math.sqrt(len(x))
    print(f"\nELBO {amortised_elbo.mean():.3f} -> {refit_elbo.mean():.3f}; IS {amortised_is.mean():.3f} -> "
          f"{refit_is.mean():.3f}; log p(x) {truth.mean():.3f}")
    assert (refit_is - amortised_is).mean().item() > -noise
    assert abs((refit_is - truth).mean().item()) < 0.02


def test_refitting_a_trained_model_moves_only_the_variational_parameters(trained_mnist_model) -> None:
    """On the MNIST β-VAE the refit raises every image's ELBO (up to its Monte-Carlo error), the decoder's
    weights neither change nor receive gradients, and the refitted q serves only the images it was fitted on."""
    model, x = trained_mnist_model
    before = {name: value.clone() for name, value in model.state_dict().items()}
    refitted = refit_posterior(model, x, steps=50, lr=0.05)
    torch.manual_seed(1)
    amortised = elbo(model, x, num_samples=100)
    torch.manual_seed(1)
    refit = elbo(refitted, x, num_samples=100)
    print(f"\nMNIST ELBO {amortised.mean():.3f} -> {refit.mean():.3f}")
    assert (refit - amortised).mean().item() > 0.5
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert all(parameter.grad is None for parameter in model.parameters())
    with pytest.raises(ValueError, match="the images the posterior was refitted on"):
        refitted.encode(x[:5])


def test_the_metric_refits_before_importance_sampling(make_linear_gaussian) -> None:
    model = make_linear_gaussian(data_dim=6, latent_dim=2, noise_std=0.3, posterior_shift=0.8).requires_grad_(False)
    x = model.sample_data(16)
    plain, refit = ImportanceSampledNLL(num_samples=20), ImportanceSampledNLL(num_samples=20, refit_steps=200, refit_lr=0.05)
    plain.update(model, x)
    refit.update(model, x)
    exact = -model.marginal().log_prob(x).mean().item()
    assert refit.compute().item() == pytest.approx(exact, abs=0.02)
    assert plain.compute().item() > exact + 0.1
    with pytest.raises(ValueError, match="refit_steps must be an integer >= 0"):
        ImportanceSampledNLL(refit_steps=-1)

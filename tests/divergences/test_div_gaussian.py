"""Analytic Gaussian KL against Monte Carlo, and the Monte Carlo fallback."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from infoae_pl.divergences import kl_diag_gaussian_standard_normal, kl_divergence


def _diag_gaussian(mean: torch.Tensor, std: torch.Tensor) -> Independent:
    return Independent(Normal(mean, std), 1)


def test_torch_analytic_kl_of_diagonal_gaussians_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    q = _diag_gaussian(torch.randn(4, 3, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64) + 0.3)
    p = _diag_gaussian(torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5)
    analytic = kl_divergence(q, p)
    z = q.sample(torch.Size([200_000]))
    log_ratio = q.log_prob(z) - p.log_prob(z)
    standard_error = log_ratio.std(0) / 200_000**0.5
    assert analytic.shape == (4,)
    assert ((log_ratio.mean(0) - analytic).abs() < 4 * standard_error).all()


def test_closed_form_against_standard_normal_equals_torch() -> None:
    torch.manual_seed(0)
    mean, std = torch.randn(5, 2), torch.rand(5, 2) + 0.1
    standard = _diag_gaussian(torch.zeros(2), torch.ones(2))
    torch.testing.assert_close(
        kl_diag_gaussian_standard_normal(mean, std), kl_divergence(_diag_gaussian(mean, std), standard)
    )


def test_monte_carlo_fallback_when_no_closed_form_is_registered() -> None:
    torch.manual_seed(0)
    mean = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    q = _diag_gaussian(mean, torch.full((3, 2), 0.7, dtype=torch.float64))
    scale = torch.tensor([1.5, 0.8], dtype=torch.float64)
    p_full = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.diag(scale.square()))
    with pytest.raises(NotImplementedError):
        kl_divergence(q, p_full)
    estimate = kl_divergence(q, p_full, num_samples=100_000)
    exact = kl_divergence(q, _diag_gaussian(torch.zeros(2, dtype=torch.float64), scale))
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.02)
    estimate.sum().backward()  # reparameterised: gradients reach q's parameters
    assert mean.grad is not None and torch.isfinite(mean.grad).all()

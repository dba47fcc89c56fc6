"""InfoGAN's structured latent: the N(0, 1) and U(−1, 1) priors against their closed forms."""

import math

import pytest
import torch

from infoae_pl.nets.codes import FactorisedCode


@pytest.mark.parametrize(("code_prior", "variance"), [("normal", 1.0), ("uniform", 1.0 / 3.0)])
def test_prior_samples_have_the_closed_form_moments_and_one_hot_codes(code_prior, variance):
    torch.manual_seed(0)
    prior = FactorisedCode.prior(5, 4, 3, like=torch.zeros(()), code_prior=code_prior)
    noise, code, continuous = prior.split(prior.sample(torch.Size([40_000])))
    for part in (noise, continuous):
        torch.testing.assert_close(part.mean(0), torch.zeros(part.shape[-1]), atol=0.02, rtol=0)
        torch.testing.assert_close(part.var(0), torch.full((part.shape[-1],), variance), atol=0.03, rtol=0)
    if code_prior == "uniform":
        assert noise.abs().max() <= 1.0 and continuous.abs().max() <= 1.0
    assert torch.equal(code.sum(-1), torch.ones(40_000))
    torch.testing.assert_close(code.mean(0), torch.full((4,), 0.25), atol=0.01, rtol=0)


def test_uniform_prior_log_density_is_constant_inside_its_support_and_minus_infinity_outside():
    prior = FactorisedCode.prior(5, 4, 3, like=torch.zeros(()), code_prior="uniform")
    z = prior.sample(torch.Size([7]))
    # U(−1, 1) has density 1/2 per value; the categorical code 1/4
    torch.testing.assert_close(prior.log_prob(z), torch.full((7,), -8 * math.log(2.0) - math.log(4.0)))
    z[0, 0] = 1.5
    assert prior.log_prob(z)[0] == -math.inf


def test_a_posterior_shares_the_priors_noise_factor_and_is_gaussian_in_the_continuous_code():
    logits, loc, scale = torch.randn(6, 4), torch.randn(6, 2), torch.rand(6, 2) + 0.5
    posterior = FactorisedCode(3, logits, torch.distributions.Normal(loc, scale), code_prior="uniform")
    z = torch.cat([torch.zeros(6, 3), torch.eye(4)[torch.arange(6) % 4], loc + scale], -1)
    expected = (-3 * math.log(2.0) + logits.log_softmax(-1)[torch.arange(6), torch.arange(6) % 4]
                + torch.distributions.Normal(loc, scale).log_prob(loc + scale).sum(-1))
    torch.testing.assert_close(posterior.log_prob(z), expected)
    assert posterior.expand(torch.Size([6])).code_prior == "uniform"

"""A posterior re-fitted on the evaluation images, for importance sampling with a better proposal.

Importance sampling with the model's amortised q(z|x) overstates the NLL by an amount that depends
on how well the encoder fits each x (its amortisation gap), so two models trained with different
encoder objectives (β-ELBO against InfoVAE) can differ in their estimated NLL through their
encoders alone. The authors' evaluation re-fitted a fresh posterior on the evaluation images first;
here every image gets its own Gaussian q(z|x) = N(μ, diag σ²), initialised from the encoder's mean
and standard deviation and moved by Adam on the image's ELBO for a fixed number of steps with the
decoder frozen. :class:`RefittedPosterior` then serves these as ``encode`` for the same images, so
every estimator of ``evaluation.estimators`` runs on it unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, Independent, Normal

from infoae_pl.divergences.gaussian import kl_divergence
from infoae_pl.evaluation.estimators import log_likelihood
from infoae_pl.validation import check_finite_number, check_int_at_least


class RefittedPosterior:
    """The model's prior and decoder with per-image Gaussian posteriors for the images it was fitted on.

    ``encode(x)`` accepts exactly those images (the same tensor values, in the same order) and refuses
    any other batch, so that a refitted q is never used for an image it was not fitted to.
    """

    has_likelihood = True

    def __init__(self, model: Any, x: Tensor, loc: Tensor, log_scale: Tensor) -> None:
        self.model, self.x, self.loc, self.log_scale = model, x, loc, log_scale

    def prior(self) -> Distribution:
        return self.model.prior()

    def decode(self, z: Tensor) -> Distribution:
        return self.model.decode(z)

    def encode(self, x: Tensor) -> Distribution:
        """The refitted q(z|x) of the fitted images ``x``."""
        if x.shape != self.x.shape or not torch.equal(x, self.x.to(x.device)):
            raise ValueError("RefittedPosterior.encode: x must be the images the posterior was refitted on")
        return Independent(Normal(self.loc, self.log_scale.exp(), validate_args=False), 1, validate_args=False)


def refit_posterior(
    model: Any, x: Tensor, steps: int = 200, lr: float = 0.01, num_samples: int = 1
) -> RefittedPosterior:
    """Fit one Gaussian q(z|x) per image of ``x`` to the image's ELBO, the decoder frozen.

    Starts from the encoder's mean and standard deviation and takes ``steps`` Adam steps (learning rate
    ``lr``, decayed linearly to zero) on −Σ_x ELBO(x), each ELBO estimated with ``num_samples`` reparameterised draws and the
    closed-form KL to the prior; the images' parameters are independent, so the result for one image
    does not depend on the others. Only the variational parameters receive gradients.
    """
    check_int_at_least("steps", steps, 0)
    check_int_at_least("num_samples", num_samples, 1)
    check_finite_number("lr", lr, minimum=0.0)
    # Lightning evaluates under inference mode: leave it, and copy x so that autograd may save it.
    with torch.inference_mode(False):
        x = x.clone()
        with torch.no_grad():
            q = model.encode(x)
            loc, log_scale = q.mean.clone(), q.stddev.log().clone()
        loc.requires_grad_(True)
        log_scale.requires_grad_(True)
        optimizer = torch.optim.Adam([loc, log_scale], lr=lr)
        # Decayed linearly to zero: the last steps average out the gradient noise instead of jittering.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / max(steps, 1))
        prior = model.prior()
        with torch.enable_grad():
            for _ in range(steps):
                posterior = Independent(Normal(loc, log_scale.exp(), validate_args=False), 1, validate_args=False)
                z = posterior.rsample(torch.Size([num_samples]))
                reconstruction = log_likelihood(model.decode(z), x).mean(dim=0)
                loss = -(reconstruction - kl_divergence(posterior, prior, num_samples=num_samples)).sum()
                optimizer.zero_grad(set_to_none=True)
                loc.grad, log_scale.grad = torch.autograd.grad(loss, [loc, log_scale])
                optimizer.step()
                schedule.step()
    return RefittedPosterior(model, x, loc.detach(), log_scale.detach())

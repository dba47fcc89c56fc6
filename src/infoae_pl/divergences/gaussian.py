"""Kullback-Leibler divergences between latent distributions (nats, one number per example)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import kl_divergence as _torch_kl


def kl_diag_gaussian_standard_normal(mean: Tensor, std: Tensor) -> Tensor:
    """KL(N(mean, diag(std²)) ‖ N(0, I)) summed over the last dimension, in closed form.

    The usual VAE regulariser written on raw parameters, for code that does not build distributions.
    """
    var = std.square()
    return 0.5 * (var + mean.square() - 1.0 - var.log()).sum(dim=-1)


def kl_divergence(q: Distribution, p: Distribution, num_samples: int | None = None) -> Tensor:
    """KL(q ‖ p) per example: torch's closed form where one is registered, else a Monte Carlo mean.

    The fallback averages ``log q(z) − log p(z)`` over ``num_samples`` reparameterised draws z ~ q
    (so gradients flow); it raises ``NotImplementedError`` when no closed form exists and
    ``num_samples`` is None.
    """
    try:
        return _torch_kl(q, p)
    except NotImplementedError:
        if num_samples is None:
            raise
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    z = q.rsample(torch.Size([num_samples]))
    return (q.log_prob(z) - p.log_prob(z)).mean(dim=0)

"""Model-agnostic generated and reconstructed x, honouring the optional ``has_likelihood`` flag.

A module with ``has_likelihood = False`` (InfoGAN, ALI/BiGAN) has no trained density p(x|z): its x for
latents z is ``sample_x(z)``, the generator output G(z). Any other module with ``decode`` is shown by the
mean of p(x|z), which avoids the noise of a draw (e.g. Bernoulli pixels); ``sample_x`` is its fallback.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution


def has_method(model: Any, name: str) -> bool:
    """Whether ``model`` has a callable ``name`` (the interface methods are all optional but ``prior``)."""
    return callable(getattr(model, name, None))


def has_likelihood(model: Any) -> bool:
    """The module's ``has_likelihood`` flag (True when absent); False: ``decode`` is no trained density."""
    return bool(getattr(model, "has_likelihood", True))


def uses_decoder_mean(model: Any) -> bool:
    """Whether x for latents z is the mean of a trained p(x|z) rather than ``sample_x(z)``."""
    return has_likelihood(model) and has_method(model, "decode")


def can_decode(model: Any) -> bool:
    """Whether ``decoded_x`` applies: a trained ``decode`` or a ``sample_x``."""
    return uses_decoder_mean(model) or has_method(model, "sample_x")


def decoded_x(model: Any, z: Tensor) -> Tensor:
    """x for latents z: the mean of p(x|z) for likelihood models with ``decode``, else ``sample_x(z)``."""
    return model.decode(z).mean if uses_decoder_mean(model) else model.sample_x(z)


def posterior_point(q: Distribution) -> Tensor:
    """The mean of q(z|x), or one draw where a custom distribution has no ``mean``."""
    try:
        return q.mean
    except (AttributeError, NotImplementedError):
        return q.sample()


def reconstruct(model: Any, x: Tensor) -> Tensor:
    """x̂ = ``decoded_x`` at the posterior point of q(z|x): the reconstruction the module would show."""
    return decoded_x(model, posterior_point(model.encode(x)))


def generate(model: Any, count: int, like: Tensor | None = None, z: Tensor | None = None) -> Tensor:
    """``count`` generated x = ``sample_x(z)``, z ~ p(z) (a draw from p(x|z) for likelihood models), or from
    the given ``z`` (``[count, latent]``).

    With real images ``like`` that are not binary, a likelihood model gives the mean of p(x|z) instead:
    a Bernoulli decoder trained on grey levels (the usual relaxation) would otherwise be scored with
    binary draws against grey images."""
    z = model.prior().sample(torch.Size([count])) if z is None else z
    if like is not None and not bool(((like == 0) | (like == 1)).all()):
        return decoded_x(model, z)
    return model.sample_x(z)

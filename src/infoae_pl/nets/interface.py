"""The probabilistic interface that evaluation code depends on (see docs/ARCHITECTURE.md).

Every returned distribution has its event dimensions reinterpreted, so ``log_prob`` yields one
number per example.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor
from torch.distributions import Distribution


@runtime_checkable
class LatentVariableModel(Protocol):
    """A model p(z) p(x|z) with an amortised posterior q(z|x)."""

    def prior(self) -> Distribution:
        """p(z): batch shape ``[]``, event shape ``[latent_dim]``."""
        ...

    def encode(self, x: Tensor) -> Distribution:
        """q(z|x) for a batch ``x`` of shape ``[B, data_dim]``; supports ``rsample``."""
        ...

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z) for a batch ``z`` of shape ``[..., latent_dim]``."""
        ...


@runtime_checkable
class ImplicitGenerator(Protocol):
    """A model that can only sample x = G(z) (InfoGAN's generator)."""

    def prior(self) -> Distribution: ...

    def sample_x(self, z: Tensor) -> Tensor: ...

"""A linear-Gaussian latent-variable model whose log p(x), posterior and I(x; z) are known in closed form."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal


class LinearGaussian(nn.Module):
    """z ~ N(0, I_k), x|z ~ N(Wz + b, σ² I_d), with W = Q diag(s) (orthonormal Q) so p(z|x) is diagonal.

    ``encode`` returns the exact posterior, or a deliberately imperfect one when ``posterior_shift`` or
    ``posterior_scale`` are set; ``decoder_std`` overrides σ in ``decode`` only (a wrong p(x|z)).
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        scales: list[float] | None = None,
        noise_std: float = 0.5,
        posterior_shift: float = 0.0,
        posterior_scale: float = 1.0,
        decoder_std: float | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        basis, _ = torch.linalg.qr(torch.randn(data_dim, latent_dim, generator=generator, dtype=dtype))
        scales_t = torch.tensor(scales or [1.0] * latent_dim, dtype=dtype)
        self.weight = nn.Parameter(basis * scales_t)
        self.bias = nn.Parameter(0.3 * torch.randn(data_dim, generator=generator, dtype=dtype))
        self.noise_std = noise_std
        self.decoder_std = noise_std if decoder_std is None else decoder_std
        self.posterior_shift = posterior_shift
        self.posterior_scale = posterior_scale

    @property
    def latent_dim(self) -> int:
        return self.weight.shape[1]

    def prior(self) -> Distribution:
        zeros = torch.zeros(self.latent_dim, dtype=self.weight.dtype, device=self.weight.device)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def decode(self, z: Tensor) -> Distribution:
        return Independent(Normal(z @ self.weight.T + self.bias, self.decoder_std), 1)

    def exact_posterior(self, x: Tensor) -> Distribution:
        """p(z|x) for the diagonal of WᵀW (exact when W has orthogonal columns)."""
        precision = 1.0 + self.weight.square().sum(0) / self.noise_std**2
        mean = (x - self.bias) @ self.weight / self.noise_std**2 / precision
        return Independent(Normal(mean, precision.rsqrt().expand_as(mean)), 1)

    def encode(self, x: Tensor) -> Distribution:
        exact = self.exact_posterior(x)
        return Independent(Normal(exact.mean + self.posterior_shift, exact.stddev * self.posterior_scale), 1)

    def marginal(self) -> MultivariateNormal:
        """p(x) = N(b, WWᵀ + σ²I)."""
        covariance = self.weight @ self.weight.T + self.noise_std**2 * torch.eye(
            self.weight.shape[0], dtype=self.weight.dtype
        )
        return MultivariateNormal(self.bias, covariance)

    def mutual_information(self) -> float:
        """I(x; z) = ½ log det(I + WᵀW/σ²)."""
        gram = self.weight.T @ self.weight / self.noise_std**2
        return 0.5 * torch.logdet(torch.eye(self.latent_dim, dtype=gram.dtype) + gram).item()

    def sample_data(self, count: int, seed: int = 1) -> Tensor:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return self.marginal().sample(torch.Size([count])).detach()


@pytest.fixture
def make_linear_gaussian() -> Callable[..., LinearGaussian]:
    """Factory for the closed-form linear-Gaussian model (float64 by default)."""
    return LinearGaussian

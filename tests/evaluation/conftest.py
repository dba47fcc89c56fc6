"""Models with known truths for the estimators: a linear-Gaussian model (log p(x), posterior and I(x; z)
in closed form), a fixed nonlinear decoder with a 2-D latent (log p(x) by quadrature, simulated (x, z)),
and a small β-VAE trained a few hundred steps on the MNIST sample."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, MultivariateNormal, Normal


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


class NonlinearToy(nn.Module):
    """z ~ N(0, I_2), x|z ~ Bernoulli(logits = W₂ tanh(W₁z + b₁)): fixed random weights, float64.

    Its 2-D latent makes log p(x) computable by quadrature on a grid (the truth for AIS), and
    ``simulate`` gives (x, z) ~ p(x, z), so z is an exact posterior sample of its x (for reverse AIS).
    """

    def __init__(self, data_dim: int = 20, hidden_dim: int = 32, scale: float = 3.0, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(1.5 * torch.randn(2, hidden_dim, generator=generator, dtype=torch.float64))
        self.b1 = nn.Parameter(torch.randn(hidden_dim, generator=generator, dtype=torch.float64))
        self.w2 = nn.Parameter(
            scale / math.sqrt(hidden_dim) * torch.randn(hidden_dim, data_dim, generator=generator, dtype=torch.float64)
        )

    def prior(self) -> Distribution:
        zeros = torch.zeros(2, dtype=torch.float64)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def decode(self, z: Tensor) -> Distribution:
        logits = torch.tanh(z @ self.w1 + self.b1) @ self.w2
        return Independent(Bernoulli(logits=logits, validate_args=False), 1)

    @torch.no_grad()
    def simulate(self, count: int, seed: int = 1) -> tuple[Tensor, Tensor]:
        """``count`` draws (x, z) ~ p(z) p(x|z)."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            z = self.prior().sample(torch.Size([count]))
            return self.decode(z).sample(), z

    @torch.no_grad()
    def quadrature_log_likelihood(self, x: Tensor, points: int = 401, half_width: float = 7.0) -> Tensor:
        """log p(x) by a Riemann sum over a ``points``² grid on [−half_width, half_width]²."""
        axis = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
        z = torch.cartesian_prod(axis, axis)
        logits = torch.tanh(z @ self.w1 + self.b1) @ self.w2  # [grid, data]
        log_px_given_z = x @ logits.T - F.softplus(logits).sum(-1)  # [B, grid]
        log_cell = 2 * math.log(2 * half_width / (points - 1))
        return (log_px_given_z + self.prior().log_prob(z) + log_cell).logsumexp(-1)


@pytest.fixture
def nonlinear_toy() -> NonlinearToy:
    """The fixed 2-D-latent nonlinear model (weights need no gradient)."""
    return NonlinearToy().requires_grad_(False)


@pytest.fixture(scope="session")
def trained_mnist_model() -> tuple[nn.Module, Tensor]:
    """A small β-VAE (β = 1, 64 hidden units, 8-D z) trained 300 Adam steps on the statically
    binarised MNIST sample, and 32 of its held-out test images."""
    from infoae_pl.data import InfoAEDataModule
    from infoae_pl.models import BetaELBO

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread only adds contention on a loaded machine
    with torch.random.fork_rng():
        torch.manual_seed(0)
        data = InfoAEDataModule(dataset="mnist5k", binarize="static", batch_size=100, seed=0)
        data.setup("fit")
        model = BetaELBO(hidden_dim=64, latent_dim=8)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        steps = 0
        while steps < 300:
            for x, _ in data.train_dataloader():
                optimizer.zero_grad()
                model.loss_terms(x)["loss"].backward()
                optimizer.step()
                steps += 1
                if steps == 300:
                    break
        optimizer.zero_grad(set_to_none=True)
        test_x = next(iter(data.test_dataloader()))[0][:32]
    torch.set_num_threads(threads)
    return model.eval().requires_grad_(False), test_x

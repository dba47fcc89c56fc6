"""Networks that map an input to a ``torch.distributions`` object with reinterpreted event dims."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from infoae_pl.nets.mlp import mlp
from infoae_pl.validation import check_choice

STD_TRANSFORMS = ("softplus", "sigmoid", "exp")
LIKELIHOODS = ("bernoulli", "gaussian")


class GaussianMLP(nn.Module):
    """x -> N(mean(x), diag(std(x)^2)); std = transform(raw) + min_std keeps log-densities finite."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 1024,
        num_hidden_layers: int = 2,
        activation: str = "tanh",
        init: str = "default",
        std_transform: str = "softplus",
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        check_choice("std_transform", std_transform, STD_TRANSFORMS)
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std}")
        self.out_dim = out_dim
        self.std_transform = std_transform
        self.min_std = min_std
        self.net = mlp(in_dim, 2 * out_dim, hidden_dim, num_hidden_layers, activation, init)

    def forward(self, inputs: Tensor) -> Distribution:
        mean, raw = self.net(inputs).chunk(2, dim=-1)
        if self.std_transform == "softplus":
            std = F.softplus(raw)
        elif self.std_transform == "sigmoid":
            std = torch.sigmoid(raw)
        else:
            std = raw.exp()
        # No argument validation: a NaN is reported by the module's finite-loss check, by name.
        return Independent(Normal(mean, std + self.min_std, validate_args=False), 1, validate_args=False)


class BernoulliMLP(nn.Module):
    """z -> independent Bernoulli(logits(z)) over the data dimensions."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 1024,
        num_hidden_layers: int = 2,
        activation: str = "tanh",
        init: str = "default",
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = mlp(in_dim, out_dim, hidden_dim, num_hidden_layers, activation, init)

    def forward(self, inputs: Tensor) -> Distribution:
        # validate_args=False: the data may be grey levels in [0, 1] (likelihood "bernoulli" on
        # non-binarised data is the common continuous relaxation).
        return Independent(Bernoulli(logits=self.net(inputs), validate_args=False), 1, validate_args=False)


def standard_normal_prior(latent_dim: int, like: Tensor) -> Distribution:
    """p(z) = N(0, I) on the device and dtype of ``like``."""
    zeros = torch.zeros(latent_dim, device=like.device, dtype=like.dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def rsample(dist: Distribution) -> Tensor:
    """A reparameterised draw that also works under ``torch.func.vmap`` (Normal.rsample fills in place)."""
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if isinstance(base, Normal):
        return base.loc + base.scale * torch.randn_like(base.loc)
    return dist.rsample()

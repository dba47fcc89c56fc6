"""InfoGAN's structured latent z = (noise, one-hot categorical code, continuous code) and its Q head."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from infoae_pl.nets.conv import FlatBatch


class FactorisedCode(Distribution):
    """z = (noise, one-hot c, continuous u): N(0, I) noise × Categorical(logits) × N(loc, scale²).

    Serves as InfoGAN's prior (uniform logits, unit Gaussian) and as its posterior q(z|x), whose
    noise factor is the prior's: InfoGAN infers the codes only (footnote 4 of the paper), so
    log q(z|x) = log p(noise) + log q(c|x) + log q(u|x).  ``rsample`` reparameterises the Gaussian
    parts; the one-hot code is drawn without gradient.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, noise_dim: int, logits: Tensor, loc: Tensor, scale: Tensor) -> None:
        self.noise_dim = noise_dim
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], loc.shape[:-1], scale.shape[:-1])
        self.logits = logits.expand(*batch_shape, logits.shape[-1])
        self.loc = loc.expand(*batch_shape, loc.shape[-1])
        self.scale = scale.expand(*batch_shape, scale.shape[-1])
        event = noise_dim + logits.shape[-1] + loc.shape[-1]
        super().__init__(batch_shape, torch.Size([event]), validate_args=False)

    @classmethod
    def prior(cls, noise_dim: int, num_categories: int, num_continuous: int, like: Tensor) -> FactorisedCode:
        """p(z): standard normal noise, uniform categorical, standard normal continuous code."""
        zeros = like.new_zeros
        return cls(noise_dim, zeros(num_categories), zeros(num_continuous), zeros(num_continuous) + 1.0)

    @property
    def num_categories(self) -> int:
        return self.logits.shape[-1]

    def split(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(noise, one-hot code, continuous code) of ``z``."""
        return z.split([self.noise_dim, self.num_categories, self.loc.shape[-1]], dim=-1)

    def expand(self, batch_shape: torch.Size, _instance: Distribution | None = None) -> FactorisedCode:
        shape = torch.Size(batch_shape)
        return FactorisedCode(
            self.noise_dim,
            self.logits.expand(*shape, self.logits.shape[-1]),
            self.loc.expand(*shape, self.loc.shape[-1]),
            self.scale.expand(*shape, self.scale.shape[-1]),
        )

    @property
    def mean(self) -> Tensor:
        noise = self.loc.new_zeros(*self.batch_shape, self.noise_dim)
        return torch.cat([noise, self.logits.softmax(-1), self.loc], -1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        noise = torch.randn(*shape, self.noise_dim, dtype=self.loc.dtype, device=self.loc.device)
        parts = [noise]
        if self.num_categories:
            index = torch.distributions.Categorical(logits=self.logits.detach()).sample(torch.Size(sample_shape))
            parts.append(F.one_hot(index, self.num_categories).to(self.loc.dtype))
        continuous = torch.randn(*shape, self.loc.shape[-1], dtype=self.loc.dtype, device=self.loc.device)
        parts.append(self.loc + self.scale * continuous)
        return torch.cat(parts, -1)

    def log_prob(self, value: Tensor) -> Tensor:
        noise, code, continuous = self.split(value)
        log_noise = torch.distributions.Normal(0.0, 1.0).log_prob(noise).sum(-1)
        log_code = (code * self.logits.log_softmax(-1)).sum(-1)
        log_continuous = torch.distributions.Normal(self.loc, self.scale).log_prob(continuous).sum(-1)
        return log_noise + log_code + log_continuous


class CodeHead(nn.Module):
    """InfoGAN's Q on a (shared) trunk's features, giving q(z|x) as a :class:`FactorisedCode`.

    ``hidden_dim`` > 0 puts Chen et al.'s hidden layer (fully connected, batch norm, leaky ReLU 0.2)
    between the trunk and the outputs; 0 makes Q linear in the features. ``continuous_std`` fixes the
    std of the continuous codes' Gaussian (None: Q outputs it, ``softplus + min_std``): a fixed std σ
    makes −log q(u|x) a squared error scaled by 1/(2σ²), which bounds that term's gradient.
    """

    def __init__(
        self,
        trunk: nn.Module,
        feature_dim: int,
        noise_dim: int,
        num_categories: int,
        num_continuous: int,
        min_std: float = 1e-3,
        hidden_dim: int = 0,
        continuous_std: float | None = None,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.noise_dim = noise_dim
        self.continuous_std = continuous_std
        self.sizes = [num_categories, num_continuous, 0 if continuous_std is not None else num_continuous]
        self.min_std = min_std
        outputs = sum(self.sizes)
        self.head = nn.Linear(feature_dim, outputs) if hidden_dim == 0 else FlatBatch(nn.Sequential(
            nn.Linear(feature_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, outputs),
        ))

    def forward(self, x: Tensor) -> FactorisedCode:
        logits, loc, raw = self.head(self.trunk(x)).split(self.sizes, dim=-1)
        scale = F.softplus(raw) + self.min_std if self.continuous_std is None else torch.full_like(loc, self.continuous_std)
        return FactorisedCode(self.noise_dim, logits, loc, scale)

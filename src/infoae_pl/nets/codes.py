"""InfoGAN's structured latent z = (noise, one-hot categorical code, continuous code) and its Q head."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, Uniform, constraints

from infoae_pl.nets.conv import FlatBatch

#: The priors of InfoGAN's noise and continuous codes: N(0, 1) per value, or U(−1, 1) as in Chen et al.
CODE_PRIORS = ("normal", "uniform")


def _base(kind: str, like: Tensor) -> Distribution:
    """One value's prior: N(0, 1) (``"normal"``) or U(−1, 1) (``"uniform"``)."""
    if kind == "uniform":
        return Uniform(like.new_tensor(-1.0), like.new_tensor(1.0), validate_args=False)
    return Normal(like.new_tensor(0.0), like.new_tensor(1.0), validate_args=False)


class FactorisedCode(Distribution):
    """z = (noise, one-hot c, continuous u): noise × Categorical(logits) × ``continuous``.

    Serves as InfoGAN's prior (uniform logits; noise and u each N(0, 1) or U(−1, 1), ``code_prior``) and
    as its posterior q(z|x), where u is Gaussian and the noise factor is the prior's: InfoGAN infers the
    codes only (footnote 4 of the paper), so log q(z|x) = log p(noise) + log q(c|x) + log q(u|x).
    ``rsample`` reparameterises u; the noise is drawn without gradient, as is the one-hot code.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, noise_dim: int, logits: Tensor, continuous: Distribution, code_prior: str = "normal") -> None:
        self.noise_dim = noise_dim
        self.code_prior = code_prior
        batch_shape = torch.broadcast_shapes(logits.shape[:-1], continuous.batch_shape[:-1])
        self.logits = logits.expand(*batch_shape, logits.shape[-1])
        self.continuous = continuous.expand(torch.Size([*batch_shape, continuous.batch_shape[-1]]))
        self.noise = _base(code_prior, logits)
        event = noise_dim + logits.shape[-1] + continuous.batch_shape[-1]
        super().__init__(batch_shape, torch.Size([event]), validate_args=False)

    @classmethod
    def prior(
        cls, noise_dim: int, num_categories: int, num_continuous: int, like: Tensor, code_prior: str = "normal"
    ) -> FactorisedCode:
        """p(z): a uniform categorical; the noise and the continuous code N(0, 1) or U(−1, 1) per value."""
        continuous = _base(code_prior, like).expand(torch.Size([num_continuous]))
        return cls(noise_dim, like.new_zeros(num_categories), continuous, code_prior)

    @property
    def num_categories(self) -> int:
        return self.logits.shape[-1]

    @property
    def num_continuous(self) -> int:
        return self.continuous.batch_shape[-1]

    def split(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(noise, one-hot code, continuous code) of ``z``."""
        return z.split([self.noise_dim, self.num_categories, self.num_continuous], dim=-1)

    def expand(self, batch_shape: torch.Size, _instance: Distribution | None = None) -> FactorisedCode:
        shape = torch.Size(batch_shape)
        return FactorisedCode(
            self.noise_dim,
            self.logits.expand(*shape, self.num_categories),
            self.continuous.expand(torch.Size([*shape, self.num_continuous])),
            self.code_prior,
        )

    @property
    def mean(self) -> Tensor:
        noise = self.logits.new_zeros(*self.batch_shape, self.noise_dim)
        return torch.cat([noise, self.logits.softmax(-1), self.continuous.mean], -1)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        parts = [self.noise.sample(torch.Size([*shape, self.noise_dim]))]
        if self.num_categories:
            index = torch.distributions.Categorical(logits=self.logits.detach()).sample(torch.Size(sample_shape))
            parts.append(F.one_hot(index, self.num_categories).to(self.logits.dtype))
        parts.append(self.continuous.rsample(torch.Size(sample_shape)))
        return torch.cat(parts, -1)

    def log_prob(self, value: Tensor) -> Tensor:
        noise, _, continuous = self.split(value)
        return self.noise.log_prob(noise).sum(-1) + self.log_prob_code(value) + self.continuous.log_prob(continuous).sum(-1)

    def log_prob_code(self, value: Tensor) -> Tensor:
        """log q(c|x) of the one-hot categorical code in ``value`` alone."""
        return (self.split(value)[1] * self.logits.log_softmax(-1)).sum(-1)


class CodeHead(nn.Module):
    """InfoGAN's Q on a (shared) trunk's features, giving q(z|x) as a :class:`FactorisedCode`.

    ``hidden_dim`` > 0 puts Chen et al.'s hidden layer (fully connected, batch norm, leaky ReLU 0.2)
    between the trunk and the outputs; 0 makes Q linear in the features. ``continuous_std`` fixes the
    std of the continuous codes' Gaussian (None: Q outputs it, ``softplus + min_std``): a fixed std σ
    makes −log q(u|x) a squared error scaled by 1/(2σ²), which bounds that term's gradient. ``code_prior``
    names the prior's noise factor, which q(z|x) shares.
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
        code_prior: str = "normal",
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.noise_dim = noise_dim
        self.code_prior = code_prior
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
        return FactorisedCode(self.noise_dim, logits, Normal(loc, scale, validate_args=False), self.code_prior)

"""Toy data: equal-weight isotropic Gaussian mixtures (the paper's 1-D mixture, the 2-D ring of 8)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from scipy import integrate
from torch import Tensor
from torch.utils.data import IterableDataset

from infoae_pl.data.seeding import WorkerAwareGenerator


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """q(x) = (1/K) Σ_k N(x; centres[k], std² I): sampling, exact density and entropy."""

    centres: Tensor
    std: float

    @property
    def dim(self) -> int:
        """Dimension of x."""
        return self.centres.shape[1]

    @property
    def num_modes(self) -> int:
        """Number of components K."""
        return self.centres.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points: x float32 ``[n, dim]`` and the component index y int64 ``[n]``."""
        y = torch.randint(self.num_modes, (n,), generator=generator)
        x = self.centres[y] + self.std * torch.randn(n, self.dim, generator=generator)
        return x.float(), y

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x) in nats for ``x`` of shape ``[..., dim]`` (computed in float64)."""
        x = x.double().unsqueeze(-2)
        sq = ((x - self.centres.double()) ** 2).sum(-1) / self.std**2
        log_norm = self.dim * math.log(math.sqrt(2 * math.pi) * self.std) + math.log(self.num_modes)
        return torch.logsumexp(-0.5 * sq, dim=-1) - log_norm

    def entropy(self) -> float:
        """Differential entropy H(q) in nats: numerical quadrature of −q log q in 1-D.

        In more dimensions the modes must be well separated (≥ 12 std apart), where
        H = log K + (d/2) log(2πe std²) holds up to a negligible overlap term.
        """
        if self.dim == 1:
            lo = float(self.centres.min()) - 20 * self.std
            hi = float(self.centres.max()) + 20 * self.std

            def integrand(t: float) -> float:
                log_q = float(self.log_prob(torch.tensor([t])))
                return -math.exp(log_q) * log_q

            points = self.centres.flatten().tolist()
            value, _ = integrate.quad(integrand, lo, hi, points=points, limit=200, epsabs=1e-11)
            return value
        if torch.pdist(self.centres.double()).min() < 12 * self.std:
            raise NotImplementedError("entropy of a multi-dimensional mixture with overlapping modes")
        return math.log(self.num_modes) + 0.5 * self.dim * math.log(2 * math.pi * math.e * self.std**2)


def mog1d() -> GaussianMixture:
    """The paper's 1-D data: ½N(−1, ¼) + ½N(1, ¼) (standard deviation 0.5)."""
    return GaussianMixture(centres=torch.tensor([[-1.0], [1.0]]), std=0.5)


def ring8(radius: float = 2.0, std: float = 0.02) -> GaussianMixture:
    """Eight 2-D Gaussians evenly spaced on a circle (radius 2, std 0.02), the usual mode-coverage toy."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture(centres=centres.float(), std=std)


class MixtureStream(IterableDataset):
    """An epoch of ``steps`` fresh batches ``(x, y)`` from a mixture, reproducible from ``seed``.

    Use with ``DataLoader(stream, batch_size=None)``; with workers, each worker draws its share of the
    steps from a seed that the loader's generator sets, so workers never repeat each other.
    """

    def __init__(self, mixture: GaussianMixture, *, batch_size: int, steps: int, seed: int) -> None:
        super().__init__()
        self.mixture = mixture
        self.batch_size = batch_size
        self.steps = steps
        self._rng = WorkerAwareGenerator(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        generator = self._rng.get()
        info = torch.utils.data.get_worker_info()
        steps = self.steps if info is None else len(range(info.id, self.steps, info.num_workers))
        for _ in range(steps):
            yield self.mixture.sample(self.batch_size, generator)

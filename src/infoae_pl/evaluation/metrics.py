"""torchmetrics wrappers of the estimators: ``update(model, x)`` per batch, ``compute()`` the mean in nats.

Sums are kept in float64 states with ``dist_reduce_fx="sum"`` and sample buffers as ``"cat"``
states, so the values reduce correctly across DDP ranks.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from infoae_pl.divergences.mmd import Kernel, gaussian_kernel, mmd
from infoae_pl.evaluation.estimators import (
    DEFAULT_CHUNK_SIZE,
    aggregate_posterior_mi,
    barber_agakov_mi,
    elbo,
    importance_sampled_log_likelihood,
    prior_sampled_log_likelihood,
    quadrature_log_likelihood,
)


class _ExampleMean(Metric):
    """Mean over all examples seen of a per-example estimate; subclasses define ``_per_example``."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, model: Any, x: Tensor) -> None:
        """Add the per-example estimates of the batch ``x`` under ``model``."""
        values = self._per_example(model, x)
        self.total += values.sum().to(self.total)
        self.count += values.numel()

    def compute(self) -> Tensor:
        """The mean over all examples (float64)."""
        return self.total / self.count


class ImportanceSampledNLL(_ExampleMean):
    """−log p(x) by importance sampling with q(z|x) as proposal (K = 5,000 as in IWAE's evaluation)."""

    higher_is_better = False

    def __init__(self, num_samples: int = 5000, chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_samples, self.chunk_size = num_samples, chunk_size

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return -importance_sampled_log_likelihood(model, x, self.num_samples, self.chunk_size)


class PriorSampledNLL(_ExampleMean):
    """−log p(x) by averaging p(x|z) over z ~ p(z) (the paper's Figure 1 estimator, 25,000 z)."""

    higher_is_better = False

    def __init__(
        self, num_samples: int = 25_000, chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_samples, self.chunk_size = num_samples, chunk_size

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return -prior_sampled_log_likelihood(model, x, self.num_samples, self.chunk_size)


class QuadratureNLL(_ExampleMean):
    """−log p(x) by quadrature over a 1-D latent (deterministic; the honest NLL for Figure 1)."""

    higher_is_better = False

    def __init__(
        self,
        grid_size: int = 10_001,
        z_range: tuple[float, float] = (-10.0, 10.0),
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.grid_size, self.z_range, self.chunk_size = grid_size, tuple(z_range), chunk_size

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return -quadrature_log_likelihood(model, x, self.grid_size, self.z_range, self.chunk_size)


class NegativeELBO(_ExampleMean):
    """−ELBO = −E_q[log p(x|z)] + KL(q(z|x) ‖ p(z)), an upper bound on the NLL."""

    higher_is_better = False

    def __init__(self, num_samples: int = 1, chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_samples, self.chunk_size = num_samples, chunk_size

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return -elbo(model, x, self.num_samples, self.chunk_size)


class BarberAgakovMI(_ExampleMean):
    """The Barber-Agakov lower bound H(x) + E_q[log p(x|z)] on I_q(x; z), given the data entropy H(x)."""

    higher_is_better = True

    def __init__(
        self, data_entropy: float, num_samples: int = 1, chunk_size: int = DEFAULT_CHUNK_SIZE, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.data_entropy, self.num_samples, self.chunk_size = float(data_entropy), num_samples, chunk_size

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return barber_agakov_mi(model, x, self.data_entropy, self.num_samples, self.chunk_size)


class AggregatePosteriorMI(Metric):
    """I_q(x; z) = E_q[log q(z|x) − log q(z)] with q(z) the mixture of the evaluation set's posteriors.

    Every posterior is needed at once, so ``update`` keeps the first ``max_examples`` inputs x (a
    ``"cat"`` state: bounded memory, gathered across ranks) and a weak reference to the model of the
    latest ``update``; ``compute`` re-encodes the kept x with that model. The estimate is at most
    log(number of kept examples).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        max_examples: int = 2000,
        num_samples: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        self.max_examples, self.num_samples, self.chunk_size = max_examples, num_samples, chunk_size
        self.add_state("inputs", [], dist_reduce_fx="cat")
        self._model_ref: weakref.ref[Any] | None = None

    def update(self, model: Any, x: Tensor) -> None:
        """Keep x (up to ``max_examples`` in all) and remember ``model`` for ``compute``."""
        self._model_ref = weakref.ref(model)
        room = self.max_examples - sum(len(kept) for kept in self.inputs)
        if room > 0:
            self.inputs.append(x[:room].detach())

    def compute(self) -> Tensor:
        """The mean over the kept examples of the aggregate-posterior MI terms (float64)."""
        model = self._model_ref() if self._model_ref is not None else None
        if model is None:
            raise RuntimeError("AggregatePosteriorMI.compute() needs a live model from a previous update()")
        inputs = torch.cat(self.inputs) if isinstance(self.inputs, list) else self.inputs
        return aggregate_posterior_mi(model, inputs, self.num_samples, self.chunk_size).mean()


class LatentMMD(Metric):
    """MMD between samples of the aggregate posterior q(z) and of the prior p(z).

    ``update`` keeps one z ~ q(z|x) per example and as many z ~ p(z), up to ``max_examples``
    (``"cat"`` states); ``compute`` applies ``mmd`` to them. The unbiased U-statistic is the default
    here so the value does not depend on the sample size (it can be slightly negative).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        max_examples: int = 2000,
        kernel: Kernel = gaussian_kernel,
        unbiased: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_examples < 2:
            raise ValueError(f"max_examples must be >= 2, got {max_examples}")
        self.max_examples, self.kernel, self.unbiased = max_examples, kernel, unbiased
        self.add_state("posterior_samples", [], dist_reduce_fx="cat")
        self.add_state("prior_samples", [], dist_reduce_fx="cat")

    @torch.no_grad()
    def update(self, model: Any, x: Tensor) -> None:
        """Draw z ~ q(z|x) for the kept part of the batch and the same number of z ~ p(z)."""
        room = self.max_examples - sum(len(kept) for kept in self.posterior_samples)
        if room <= 0:
            return
        x = x[:room]
        self.posterior_samples.append(model.encode(x).sample())
        self.prior_samples.append(model.prior().sample(torch.Size([x.shape[0]])))

    def compute(self) -> Tensor:
        """The MMD between all kept posterior and prior samples (float64)."""
        posterior, prior = (
            torch.cat(samples) if isinstance(samples, list) else samples
            for samples in (self.posterior_samples, self.prior_samples)
        )
        return mmd(posterior.double(), prior.double(), self.kernel, self.unbiased)

"""torchmetrics wrappers of the estimators: ``update(model, x)`` per batch, ``compute()`` the mean in nats.

Sums are kept in float64 states with ``dist_reduce_fx="sum"`` and sample buffers as ``"cat"``
states, so the values reduce correctly across DDP ranks.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from infoae_pl.divergences.mmd import Kernel, gaussian_kernel, mmd
from infoae_pl.evaluation.ais import AISSettings, ais_log_likelihood
from infoae_pl.evaluation.estimators import (
    DEFAULT_CHUNK_SIZE,
    aggregate_posterior_mi,
    barber_agakov_mi,
    elbo,
    importance_sampled_log_likelihood,
    prior_sampled_log_likelihood,
    quadrature_log_likelihood,
)
from infoae_pl.evaluation.refit import refit_posterior
from infoae_pl.evaluation.sampling import generate, reconstruct
from infoae_pl.validation import check_finite_number, check_int_at_least


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
    """−log p(x) by importance sampling with q(z|x) as proposal (K = 5,000 as in IWAE's evaluation);
    with ``refit_steps`` > 0 the proposal is q(z|x) re-fitted per image on its ELBO first."""

    higher_is_better = False

    def __init__(
        self,
        num_samples: int = 5000,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        refit_steps: int = 0,
        refit_lr: float = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_int_at_least("refit_steps", refit_steps, 0)
        check_finite_number("refit_lr", refit_lr, minimum=0.0)
        self.num_samples, self.chunk_size = num_samples, chunk_size
        self.refit_steps, self.refit_lr = refit_steps, refit_lr

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        if self.refit_steps:  # the proposal is q(z|x) re-fitted on this batch (evaluation.refit)
            model = refit_posterior(model, x, self.refit_steps, self.refit_lr)
        return -importance_sampled_log_likelihood(model, x, self.num_samples, self.chunk_size)


class AISNLL(_ExampleMean):
    """−log p(x) by annealed importance sampling (``evaluation.ais``); ``settings`` are fields of
    ``AISSettings``: ``num_steps`` intermediate distributions from ``initial`` ("prior" or "posterior" =
    q(z|x)) to p(x, z), ``num_chains`` chains per x, HMC with ``leapfrog_steps`` leapfrog steps and step
    sizes adapted toward ``target_acceptance``.
    An upper bound on the NLL in expectation that, unlike importance sampling with q(z|x), does not
    depend on how good the amortised posterior is once the chains have enough steps."""

    higher_is_better = False

    def __init__(self, settings: AISSettings | None = None, **kwargs: Any) -> None:
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in AISSettings.__dataclass_fields__}
        super().__init__(**kwargs)
        self.settings = (settings or AISSettings(**fields)).checked()

    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        return -ais_log_likelihood(model, x, **self.settings.as_kwargs())


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


def _kernel_mean(kernel: Kernel, a: Tensor, b: Tensor, chunk_size: int) -> Tensor:
    """Mean of ``kernel(a, b)`` over all pairs, ``chunk_size`` rows of a at a time to bound the memory."""
    total = sum(kernel(rows, b).sum() for rows in a.split(chunk_size))
    return total / (a.shape[0] * b.shape[0])


class GeneratedDataMMD(Metric):
    """Biased squared MMD between the real x seen and as many generated x = ``sample_x(z)``, z ~ p(z).

    ``update`` keeps up to ``max_examples`` real x (flattened) and draws the same number of generated x
    (``"cat"`` states, so each rank generates for its own share); ``compute`` is ``mmd(real, generated)``
    (the V-statistic, ≥ 0) in float64, the kernel evaluated ``chunk_size`` rows at a time so that 784-d
    images and thousands of examples stay within a few ``[chunk_size, max_examples]`` matrices (so the
    kernel must not depend on the sample, e.g. no median-heuristic bandwidth).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        max_examples: int = 2000,
        kernel: Kernel = gaussian_kernel,
        chunk_size: int = 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.max_examples, self.kernel, self.chunk_size = max_examples, kernel, chunk_size
        self.add_state("real", [], dist_reduce_fx="cat")
        self.add_state("generated", [], dist_reduce_fx="cat")

    @torch.no_grad()
    def update(self, model: Any, x: Tensor) -> None:
        """Keep the batch's real x (within the cap) and generate as many x from the model."""
        room = self.max_examples - sum(len(kept) for kept in self.real)
        if room <= 0:
            return
        x = x[:room].flatten(1)
        self.real.append(x.detach())
        self.generated.append(generate(model, x.shape[0]).flatten(1))

    def compute(self) -> Tensor:
        """The biased squared MMD between all kept real and generated x (float64)."""
        real, generated = (
            (torch.cat(samples) if isinstance(samples, list) else samples).double()
            for samples in (self.real, self.generated)
        )
        return (
            _kernel_mean(self.kernel, real, real, self.chunk_size)
            + _kernel_mean(self.kernel, generated, generated, self.chunk_size)
            - 2.0 * _kernel_mean(self.kernel, real, generated, self.chunk_size)
        )


class ReconstructionError(_ExampleMean):
    """Mean squared reconstruction error ‖x − x̂‖² (summed over data dimensions) at the posterior point.

    x̂ is ``sampling.reconstruct``: the mean of p(x|z) for likelihood models with ``decode`` (not a noisy
    draw such as Bernoulli pixels), else ``sample_x(z)``, with z the mean of q(z|x) (one draw where the
    posterior has no mean).
    """

    higher_is_better = False

    @torch.no_grad()
    def _per_example(self, model: Any, x: Tensor) -> Tensor:
        errors = x.flatten(1).double() - reconstruct(model, x).reshape(x.shape[0], -1).double()
        return errors.square().sum(-1)


class ModeCoverage(Metric):
    """Mode coverage of a Gaussian mixture with known centres and common std (Unrolled GAN, VEEGAN).

    On its first ``update`` of an evaluation (the real x are not used) it draws ``num_samples`` x =
    ``sample_x(z)``, z ~ p(z), and assigns each to its nearest centre; a sample is high quality when
    within ``quality_stds``·std of it, and a mode is hit when it receives at least one high-quality
    sample. ``compute`` returns ``modes_hit`` (count), ``high_quality_fraction`` (in [0, 1]) and
    ``mode_kl`` = KL(p ‖ uniform), p the modes' shares of the high-quality samples (log(number of
    modes), its supremum, when there is none). Per-mode counts are ``"sum"``
    states, so under DDP every rank adds ``num_samples`` draws.
    """

    is_differentiable = False
    full_state_update = False

    def __init__(
        self, centres: Tensor, std: float, num_samples: int = 2500, quality_stds: float = 3.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if centres.ndim != 2:
            raise ValueError(f"centres must be [num_modes, dim], got shape {tuple(centres.shape)}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.centres = centres.detach().double().cpu()
        self.radius = quality_stds * float(std)
        self.num_samples = num_samples
        self.add_state("hits", torch.zeros(len(centres), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(self, model: Any, x: Tensor) -> None:
        """Generate and count the samples once per evaluation (the first update); ``x`` is ignored."""
        if self.count > 0:
            return
        samples = generate(model, self.num_samples).flatten(1).double()
        distances, nearest = torch.cdist(samples, self.centres.to(samples.device)).min(dim=1)
        quality = distances <= self.radius
        self.hits += torch.bincount(nearest[quality], minlength=len(self.centres)).to(self.hits)
        self.count += self.num_samples

    def compute(self) -> dict[str, Tensor]:
        """``modes_hit``, ``high_quality_fraction`` and ``mode_kl`` (float64)."""
        total = self.hits.sum()
        share = self.hits / total.clamp_min(1.0)
        log_modes = math.log(len(self.hits))
        kl = torch.where(total > 0, torch.xlogy(share, share).sum() + log_modes, log_modes)
        return {
            "modes_hit": (self.hits > 0).sum().double(),
            "high_quality_fraction": total / self.count,
            "mode_kl": kl,
        }

"""Sample estimates of the toolbox terms, from one function that draws every sample they need.

Every estimate is in nats, summed over data dimensions, averaged over the batch's last dimension:

* ``E_q[...]`` terms: x from the batch, one reparameterised z ~ q(z|x) per x, shared by all of them.
* ``E_p[...]`` terms: as many z ~ p(z) as the batch has examples, then x ~ p(x|z).
  ``E_p[log p(x|z)]`` is the analytic −entropy of p(x|z) (Bernoulli and Gaussian decoders both have
  one); ``E_p[log q(z|x)]`` differentiates through x reparameterised when the decoder allows it
  (Gaussian, or an implicit generator) and by the score-function estimator with a leave-one-out
  baseline otherwise (Bernoulli); ``E_p[log p(z)]`` is the prior's (constant) −entropy by Monte Carlo.
* :data:`~infoae_pl.objectives.config.ANALYTIC_KL`: the closed-form KL(q(z|x)‖p(z)), batch-averaged.
* divergences between marginals or joints (``KL``, ``D``, ``JS`` or ``MMD`` of q and p over z, x or
  (x, z), either direction), on samples of both sides, by the estimator chosen per pair: the
  squared MMD (unit MMD², not nats) or a critic. q's samples are the batch's x and z ~ q(z|x); p's
  are z ~ p(z) with generated x.

The loss and the critics draw their samples with :func:`draw_samples`, so both see the same kind of
sample of each side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, kl_divergence

from infoae_pl.divergences import mmd
from infoae_pl.divergences.mmd import Kernel
from infoae_pl.nets import rsample
from infoae_pl.objectives.config import ANALYTIC_KL, LOG_P_Z, LOG_Q_ZX
from infoae_pl.objectives.terms import TERMS

#: Terms that need z ~ q(z|x) for the batch, and those that need z ~ p(z).
Q_TERMS = frozenset({"E_q[log p(x|z)]", LOG_Q_ZX, LOG_P_Z, "E_q[log p(x,z)]", ANALYTIC_KL})
P_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log q(z|x)]", "E_p[log p(z)]", "E_p[log p(x,z)]"})
#: E_p terms that need x ~ p(x|z) (or its density p(x|z) at the drawn z).
P_X_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log q(z|x)]", "E_p[log p(x,z)]"})
#: Terms that need the density p(x|z) at generated x, which an implicit generator does not have.
P_DENSITY_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log p(x,z)]"})
#: Divergences between marginals or joints (the likelihood-free toolbox terms), by name -> pair.
DIVERGENCE_PAIRS = {n: t.pair for n, t in TERMS.items() if t.divergence is not None and t.pair in ("x", "z", "x,z")}
#: Every name :func:`estimate_terms` accepts.
ESTIMABLE_TERMS = Q_TERMS | P_TERMS | frozenset(DIVERGENCE_PAIRS)


def other_side(side: str) -> str:
    """``"p"`` for ``"q"`` and ``"q"`` for ``"p"``: the second distribution of a divergence."""
    return "q" if side == "p" else "p"


def draw_x(p_x: Distribution) -> Tensor:
    """A vmap-safe draw from p(x|z): reparameterised where possible, else Bernoulli by thresholding uniforms."""
    if p_x.has_rsample:
        return rsample(p_x)
    base = p_x.base_dist if isinstance(p_x, Independent) else p_x
    if not isinstance(base, Bernoulli):
        raise ValueError(f"no sampler for a non-reparameterisable {type(base).__name__} decoder")
    return (torch.rand_like(base.probs) < base.probs).to(base.probs.dtype)


def score_function_mean(values: Tensor, log_prob: Tensor) -> Tensor:
    """Mean of ``values`` over the last dimension whose gradient adds the score-function term.

    The value is the plain Monte-Carlo mean; the gradient is that of the mean plus
    mean((values − b)·∇log_prob) with the leave-one-out baseline b_i = mean of the other values
    (unbiased: b_i does not depend on sample i; zero for a single sample).
    """
    detached = values.detach()
    n = values.shape[-1]
    baseline = (detached.sum(-1, keepdim=True) - detached) / max(n - 1, 1)
    surrogate = ((detached - baseline) * log_prob).mean(-1)
    return values.mean(-1) + (surrogate - surrogate.detach())


@dataclass
class Samples:
    """The draws for one batch: q's side (x, z ~ q(z|x)) and p's side (z ~ p(z), generated x)."""

    x: Tensor
    q_z: Distribution | None = None
    z_q: Tensor | None = None
    z_p: Tensor | None = None
    p_x: Distribution | None = None
    x_p: Tensor | None = None

    def side(self, pair: str, side: str) -> Tensor:
        """The sample of distribution ``side`` ("q" or "p") over ``pair`` ("x", "z" or "x,z")."""
        x, z = (self.x, self.z_q) if side == "q" else (self.x_p, self.z_p)
        if pair == "x,z":
            return torch.cat([x, z], -1)
        return x if pair == "x" else z

    def of_divergence(self, term: str) -> tuple[Tensor, Tensor]:
        """(sample of the distribution ``term`` names first, sample of the other)."""
        pair, first = DIVERGENCE_PAIRS[term], TERMS[term].first
        return self.side(pair, first), self.side(pair, other_side(first))


def draw_samples(
    model: Any, x: Tensor, *, q: bool, p: bool, generated_x: bool, prior_first: bool = False
) -> Samples:
    """Draw what the estimates need: z ~ q(z|x) (``q``), z ~ p(z) (``p``), x from p(x|z_p) (``generated_x``).

    z ~ q(z|x) is drawn before z ~ p(z) unless ``prior_first`` (the critics' order since their
    first release, kept so that runs repeat number for number). Generated x are G(z) = mean of p(x|z)
    for a model with ``implicit_generator``, else draws from p(x|z).
    """
    samples = Samples(x)

    def draw_q() -> None:
        samples.q_z = model.encode(x)
        samples.z_q = rsample(samples.q_z)

    def draw_p() -> None:
        samples.z_p = rsample(model.prior().expand(x.shape[:-1]))

    for enabled, draw in ((p, draw_p), (q, draw_q)) if prior_first else ((q, draw_q), (p, draw_p)):
        if enabled:
            draw()
    if generated_x:
        samples.p_x = model.decode(samples.z_p)
        samples.x_p = samples.p_x.mean if model.implicit_generator else draw_x(samples.p_x)
    return samples


class TermEstimator:
    """Estimates named toolbox terms for a model (``prior/encode/decode`` and ``implicit_generator``).

    ``estimators`` maps each pair ("x", "z", "x,z") to ``"mmd"`` or a critic divergence; MMD uses
    ``kernel``; the other divergence terms are estimated by ``critics`` (their ``estimate(term, a, b)``).
    """

    def __init__(self, estimators: Mapping[str, str], kernel: Kernel, critics: Any) -> None:
        self.estimators = dict(estimators)
        self.kernel = kernel
        self.critics = critics

    def needs(self, names: Iterable[str]) -> dict[str, bool]:
        """Which draws the named terms need (the keyword arguments of :func:`draw_samples`)."""
        wanted = set(names)
        pairs = {DIVERGENCE_PAIRS[n] for n in wanted if n in DIVERGENCE_PAIRS}
        return {
            "q": bool(wanted & Q_TERMS or pairs & {"z", "x,z"}),
            "p": bool(wanted & P_TERMS or pairs),
            "generated_x": bool(wanted & P_X_TERMS or pairs & {"x", "x,z"}),
        }

    def estimate(self, model: Any, x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
        """Estimates of the named terms (any of :data:`ESTIMABLE_TERMS`) on the batch ``x``, in the order named."""
        names = list(dict.fromkeys(names))
        unknown = sorted(set(names) - ESTIMABLE_TERMS)
        if unknown:
            raise ValueError(f"no estimator for {', '.join(unknown)}; estimable: {', '.join(sorted(ESTIMABLE_TERMS))}")
        wanted = set(names)
        if model.implicit_generator and wanted & P_DENSITY_TERMS:
            raise ValueError(
                f"an implicit generator has no density p(x|z) for {', '.join(sorted(wanted & P_DENSITY_TERMS))}"
            )
        needs = self.needs(wanted)
        s = draw_samples(model, x, **needs)
        prior = model.prior()
        out: dict[str, Tensor] = {}
        if needs["q"]:
            out[LOG_Q_ZX] = s.q_z.log_prob(s.z_q).mean(-1)
            out[LOG_P_Z] = prior.log_prob(s.z_q).mean(-1)
            if wanted & {"E_q[log p(x|z)]", "E_q[log p(x,z)]"}:
                out["E_q[log p(x|z)]"] = model.decode(s.z_q).log_prob(x).mean(-1)
                out["E_q[log p(x,z)]"] = out["E_q[log p(x|z)]"] + out[LOG_P_Z]
            if ANALYTIC_KL in wanted:
                out[ANALYTIC_KL] = kl_divergence(s.q_z, prior).mean(-1)
        if needs["p"]:
            out["E_p[log p(z)]"] = prior.log_prob(s.z_p).mean(-1)
        if needs["generated_x"]:
            if wanted & P_DENSITY_TERMS:
                out["E_p[log p(x|z)]"] = -s.p_x.entropy().mean(-1)
                out["E_p[log p(x,z)]"] = out["E_p[log p(x|z)]"] + out["E_p[log p(z)]"]
            if "E_p[log q(z|x)]" in wanted:
                out["E_p[log q(z|x)]"] = self._expected_log_q_under_p(model, s)
        out.update(self._divergences(wanted, s))
        return {n: out[n] for n in names}

    def _divergences(self, wanted: set[str], samples: Samples) -> dict[str, Tensor]:
        """Every wanted divergence term, by MMD (one value per pair) or by its critic."""
        out: dict[str, Tensor] = {}
        for pair in ("z", "x", "x,z"):
            names = [n for n, p in DIVERGENCE_PAIRS.items() if p == pair and n in wanted]
            if not names:
                continue
            if self.estimators[pair] == "mmd":
                out.update(dict.fromkeys(names, mmd(samples.side(pair, "q"), samples.side(pair, "p"), self.kernel)))
            else:
                out.update({n: self.critics.estimate(n, *samples.of_divergence(n)) for n in names})
        return out

    @staticmethod
    def _expected_log_q_under_p(model: Any, s: Samples) -> Tensor:
        """E_p[log q(z|x)]: pathwise through x ~ p(x|z) when x carries gradients, else score function."""
        log_q = model.log_q_generated(s.x_p, s.z_p)
        if model.implicit_generator or s.p_x.has_rsample:
            return log_q.mean(-1)
        return score_function_mean(log_q, s.p_x.log_prob(s.x_p))

"""The base module that trains any compiled Lagrangian: one sample estimator per toolbox term.

A Lagrangian (term -> coefficient, DESIGN.md names) or a named preset is compiled
(:func:`infoae_pl.objectives.compile`) into its tractable form, a weighted sum of toolbox terms, and
every toolbox term is estimated on samples (nats, summed over data dimensions, averaged over the
batch's last dimension):

* ``E_q[...]`` terms: x from the batch, one reparameterised z ~ q(z|x) per x, shared by all of them.
* ``E_p[...]`` terms: as many z ~ p(z) as the batch has examples, then x ~ p(x|z).
  ``E_p[log p(x|z)]`` is the analytic −entropy of p(x|z) (Bernoulli and Gaussian decoders both have
  one); ``E_p[log q(z|x)]`` differentiates through x reparameterised when the decoder allows it
  (Gaussian) and by the score-function estimator with a leave-one-out baseline otherwise
  (Bernoulli); ``E_p[log p(z)]`` is the prior's (constant) −entropy by Monte Carlo.
* divergences between the z marginals (``KL``, ``D``, ``JS`` or ``MMD`` of q(z) and p(z), either
  direction): the squared MMD between the batch's z ~ q(z|x) and the z ~ p(z) draws, as the paper
  allows for a likelihood-free term ("any strict divergence"); its unit is MMD², not nats.
* divergences between x marginals or joints need an adversarial critic, which is not available
  yet: such objectives are refused at construction.

Analytic-KL grouping: for every Lagrangian over the twelve KL-family terms, the compiler writes the
E_q part that involves q(z|x) as ``c·E_q[log q(z|x)] − c·E_q[log p(z)]`` (e.g. the β-ELBO's
β·E_q[log q(z|x)] − β·E_q[log p(z)]).  Wherever the tractable form holds that pair with exactly
opposite coefficients (compared exactly, as Fractions, at construction), the loss uses the single component
``E_q[KL(q(z|x)||p(z))]`` (the closed-form KL of each x's Gaussian posterior to the prior, averaged
over the batch) with coefficient c instead of the two Monte-Carlo terms: same expectation, no
sampling variance, and the β-ELBO's usual estimator.  Both Monte-Carlo terms are still returned and
logged under their own names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

import torch
from torch import Tensor
from torch.distributions import Bernoulli, Distribution, Independent, kl_divergence

from infoae_pl.divergences import gaussian_kernel, mmd
from infoae_pl.models.base import LatentVariableModule
from infoae_pl.nets import rsample
from infoae_pl.objectives import PRESETS, CompiledObjective, Lagrangian
from infoae_pl.objectives import compile as compile_lagrangian
from infoae_pl.objectives import preset as build_preset
from infoae_pl.objectives.terms import TERMS
from infoae_pl.validation import check_choice, check_finite_number

#: How a divergence between the z marginals is estimated ("adversarial" joins with the critic issue).
Z_DIVERGENCES: tuple[str, ...] = ("mmd",)
#: The loss component replacing ``c·E_q[log q(z|x)] − c·E_q[log p(z)]``: the analytic KL, batch-averaged.
ANALYTIC_KL = "E_q[KL(q(z|x)||p(z))]"
_LOG_Q_ZX = "E_q[log q(z|x)]"
_LOG_P_Z = "E_q[log p(z)]"
#: Terms that need z ~ q(z|x) for the batch, and those that need z ~ p(z) (z-marginal divergences need both).
_Q_TERMS = frozenset({"E_q[log p(x|z)]", _LOG_Q_ZX, _LOG_P_Z, "E_q[log p(x,z)]", ANALYTIC_KL})
_P_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log q(z|x)]", "E_p[log p(z)]", "E_p[log p(x,z)]"})
_Z_MARGINAL = frozenset(n for n, t in TERMS.items() if t.divergence is not None and t.pair == "z")
_NEEDS_CRITIC = frozenset(n for n, t in TERMS.items() if t.divergence is not None and t.pair in ("x", "x,z"))
#: Every name :meth:`LagrangianModule.estimate_terms` accepts.
ESTIMABLE_TERMS = _Q_TERMS | _P_TERMS | _Z_MARGINAL


def build_lagrangian(
    lagrangian: Mapping[str, float] | None, preset_name: str | None, preset_params: Mapping[str, float] | None
) -> Lagrangian:
    """The objective from a term -> coefficient map, a preset name with its parameters, or both:
    then the map's terms are added to the preset's (e.g. β-ELBO + λ·MMD(q(z)||p(z)), Figure 2's InfoVAE)."""
    if lagrangian is None and preset_name is None:
        raise ValueError(
            "give lagrangian (term -> coefficient, e.g. {'I_q': -0.5, "
            f"'KL(q(x|z)||p(x|z))': 1, 'KL(q(z)||p(z))': 1.5}}) or preset (one of: {', '.join(PRESETS)}), or both"
        )
    if preset_name is None:
        if preset_params:
            raise ValueError("preset_params only applies to a preset; put coefficients in lagrangian instead")
        return Lagrangian(lagrangian)
    objective = build_preset(preset_name, **(preset_params or {}))
    return objective if lagrangian is None else objective + Lagrangian(lagrangian)


def check_trainable(compiled: CompiledObjective) -> None:
    """Refuse, before any training, an objective that is intractable, constant or needs a critic."""
    objective = compiled.lagrangian
    if not compiled.is_tractable:
        raise ValueError(
            f"{objective} cannot be trained: {compiled.message} (uncovered terms: {', '.join(compiled.uncovered_terms)})"
        )
    if not compiled.tractable_form:
        raise ValueError(f"{objective or 'the empty Lagrangian'} compiles to a constant: there is nothing to train")
    critic = [n for n in compiled.tractable_form if n in _NEEDS_CRITIC]
    if critic:
        raise ValueError(
            f"{objective} compiles to {compiled.formula()} ({compiled.tractability_class}), which needs a "
            f"critic (adversarial estimator), which is not available yet: terms {', '.join(critic)}"
        )


def loss_components(tractable_form: Mapping[str, Fraction]) -> dict[str, float]:
    """The tractable form as float loss coefficients, with an opposite-signed ``E_q[log q(z|x)]``,
    ``E_q[log p(z)]`` pair replaced by :data:`ANALYTIC_KL` (see the module docstring)."""
    c = tractable_form.get(_LOG_Q_ZX, Fraction(0))
    grouped = c != 0 and tractable_form.get(_LOG_P_Z) == -c
    components: dict[str, float] = {}
    for name, value in tractable_form.items():
        if grouped and name == _LOG_Q_ZX:
            components[ANALYTIC_KL] = float(value)
        elif not (grouped and name == _LOG_P_Z):
            components[name] = float(value)
    return components


def sample_x(p_x: Distribution) -> Tensor:
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


class LagrangianModule(LatentVariableModule):
    """Trains the compiled form of a Lagrangian (or preset) of the Information-Autoencoding family.

    The objective is ``lagrangian`` (term name -> coefficient, DESIGN.md names verbatim, e.g.
    ``{"I_q": -0.5, "KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1.5}``), or ``preset`` (a name of
    :data:`infoae_pl.objectives.PRESETS`, with ``preset_params``), or a preset plus extra terms.  ``z_divergence`` says how
    divergences between the z marginals are estimated (``"mmd"``: squared MMD with a Gaussian kernel
    of bandwidth ``mmd_kernel_bandwidth``, default the latent dimension).  The remaining arguments
    are :class:`LatentVariableModule`'s.  Objectives that are intractable, constant or need a critic
    raise ValueError here, before any training.

    ``loss_terms`` returns one estimate per compiled term under its algebra name and the loss
    Σ coefficients(step)[k] · terms[k] over the loss components (see :func:`loss_components`).
    """

    def __init__(
        self,
        lagrangian: dict[str, float] | None = None,
        preset: str | None = None,
        preset_params: dict[str, float] | None = None,
        z_divergence: str = "mmd",
        mmd_kernel_bandwidth: float | None = None,
        data_dim: int = 784,
        latent_dim: int = 50,
        likelihood: str = "bernoulli",
        hidden_dim: int = 1024,
        num_hidden_layers: int = 2,
        activation: str = "tanh",
        init: str = "default",
        std_transform: str = "softplus",
        min_std: float = 1e-3,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.1,
    ) -> None:
        check_choice("z_divergence", z_divergence, Z_DIVERGENCES)
        if mmd_kernel_bandwidth is not None:
            check_finite_number("mmd_kernel_bandwidth", mmd_kernel_bandwidth)
            if mmd_kernel_bandwidth <= 0:
                raise ValueError(f"mmd_kernel_bandwidth must be > 0, got {mmd_kernel_bandwidth!r}")
        compiled = compile_lagrangian(build_lagrangian(lagrangian, preset, preset_params))
        check_trainable(compiled)
        super().__init__(
            data_dim=data_dim,
            latent_dim=latent_dim,
            likelihood=likelihood,
            hidden_dim=hidden_dim,
            num_hidden_layers=num_hidden_layers,
            activation=activation,
            init=init,
            std_transform=std_transform,
            min_std=min_std,
            lr=lr,
            betas=betas,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.save_hyperparameters()
        self.compiled = compiled
        #: The compiled objective over toolbox terms, as floats (term name -> coefficient).
        self.tractable_form: dict[str, float] = {n: float(c) for n, c in compiled.tractable_form.items()}
        self.components = loss_components(compiled.tractable_form)
        self.kernel = functools.partial(gaussian_kernel, bandwidth=mmd_kernel_bandwidth)

    def coefficients(self, step: int) -> dict[str, float]:
        """Loss component name -> coefficient (constant in ``step``); stacked copies may vary the values."""
        return dict(self.components)

    def estimate_terms(self, x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
        """Estimates of the named terms (any of :data:`ESTIMABLE_TERMS`) on the batch ``x``, in the order named.

        Draws only what the names need, in a fixed order: z ~ q(z|x), then z ~ p(z), then x ~ p(x|z).
        A z-marginal divergence takes ``x`` as one sample of q(x) (shape ``[B, data_dim]``).
        """
        names = list(dict.fromkeys(names))
        unknown = sorted(set(names) - ESTIMABLE_TERMS)
        if unknown:
            raise ValueError(f"no estimator for {', '.join(unknown)}; estimable: {', '.join(sorted(ESTIMABLE_TERMS))}")
        wanted = set(names)
        prior = self.prior()
        out: dict[str, Tensor] = {}
        if wanted & (_Q_TERMS | _Z_MARGINAL):
            q_z = self.encode(x)
            z_q = rsample(q_z)
            out[_LOG_Q_ZX] = q_z.log_prob(z_q).mean(-1)
            out[_LOG_P_Z] = prior.log_prob(z_q).mean(-1)
            if wanted & {"E_q[log p(x|z)]", "E_q[log p(x,z)]"}:
                out["E_q[log p(x|z)]"] = self.decode(z_q).log_prob(x).mean(-1)
                out["E_q[log p(x,z)]"] = out["E_q[log p(x|z)]"] + out[_LOG_P_Z]
            if ANALYTIC_KL in wanted:
                out[ANALYTIC_KL] = kl_divergence(q_z, prior).mean(-1)
        if wanted & (_P_TERMS | _Z_MARGINAL):
            z_p = rsample(prior.expand(x.shape[:-1]))
            out["E_p[log p(z)]"] = prior.log_prob(z_p).mean(-1)
            if wanted & _Z_MARGINAL:
                out.update(dict.fromkeys(_Z_MARGINAL, mmd(z_q, z_p, self.kernel)))
            if wanted & {"E_p[log p(x|z)]", "E_p[log p(x,z)]", "E_p[log q(z|x)]"}:
                p_x = self.decode(z_p)
                out["E_p[log p(x|z)]"] = -p_x.entropy().mean(-1)
                out["E_p[log p(x,z)]"] = out["E_p[log p(x|z)]"] + out["E_p[log p(z)]"]
                if "E_p[log q(z|x)]" in wanted:
                    out["E_p[log q(z|x)]"] = self._expected_log_q_under_p(z_p, p_x)
        return {n: out[n] for n in names}

    def _expected_log_q_under_p(self, z_p: Tensor, p_x: Distribution) -> Tensor:
        """E_p[log q(z|x)]: pathwise through x ~ p(x|z) if reparameterisable, else score function."""
        x_p = sample_x(p_x)
        log_q = self.encode(x_p).log_prob(z_p)
        if p_x.has_rsample:
            return log_q.mean(-1)
        return score_function_mean(log_q, p_x.log_prob(x_p))

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """``"loss"`` = Σ_k coefficients[k]·terms[k] over the loss components, plus every compiled
        term's estimate by name; ``coefficients`` default to :meth:`coefficients` and may be 0-d
        tensors (stacked copies)."""
        c = self.coefficients(self.global_step) if coefficients is None else coefficients
        terms = self.estimate_terms(x, (*c, *self.tractable_form))
        loss = sum(torch.as_tensor(c[k], dtype=terms[k].dtype) * terms[k] for k in c)
        return {"loss": loss, **terms}

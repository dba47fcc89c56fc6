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
* divergences between marginals or joints (``KL``, ``D``, ``JS`` or ``MMD`` of q and p over z, x or
  (x, z), either direction): estimated on samples of both sides, as the paper allows for a
  likelihood-free term ("any strict divergence"), by the estimator chosen per pair: the squared MMD
  (unit MMD², not nats), or a critic (GAN discriminator for JS, f-GAN bound for KL) trained by
  alternation.  q's samples are the batch's x and z ~ q(z|x); p's are z ~ p(z) with generated x.
* with ``constraints``, multipliers are learned (section 4.1): the loss is O + Σ λ_i·C_i and each
  λ_i ≥ 0 takes a projected ascent step on λ_i·(C_i − ε_i) (see :mod:`infoae_pl.objectives.dual`).

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

import contextlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any, ClassVar

import torch
from lightning import LightningModule
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, kl_divergence

from infoae_pl.divergences import CRITIC_DIVERGENCES, AdversarialDivergence, make_kernel, mmd
from infoae_pl.models.base import LatentVariableModule, adam_with_schedule
from infoae_pl.nets import BernoulliMLP, MLPCritic, rsample
from infoae_pl.objectives import PRESETS, CompiledObjective, Lagrangian
from infoae_pl.objectives import compile as compile_lagrangian
from infoae_pl.objectives import preset as build_preset
from infoae_pl.objectives.dual import compile_dual
from infoae_pl.objectives.terms import TERMS
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

#: Estimators of a divergence term, chosen per pair of variables (``x``, ``z`` or the joint ``x,z``).
DIVERGENCE_ESTIMATORS: tuple[str, ...] = ("mmd", *CRITIC_DIVERGENCES)
#: Optimisers of learned multipliers, and the keys of one constraint.
MULTIPLIER_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
CONSTRAINT_KEYS: tuple[str, ...] = ("lagrangian", "preset", "preset_params", "epsilon", "initial")
#: The loss component replacing ``c·E_q[log q(z|x)] − c·E_q[log p(z)]``: the analytic KL, batch-averaged.
ANALYTIC_KL = "E_q[KL(q(z|x)||p(z))]"
_LOG_Q_ZX = "E_q[log q(z|x)]"
_LOG_P_Z = "E_q[log p(z)]"
#: Terms that need z ~ q(z|x) for the batch, and those that need z ~ p(z).
_Q_TERMS = frozenset({"E_q[log p(x|z)]", _LOG_Q_ZX, _LOG_P_Z, "E_q[log p(x,z)]", ANALYTIC_KL})
_P_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log q(z|x)]", "E_p[log p(z)]", "E_p[log p(x,z)]"})
#: E_p terms that need x ~ p(x|z) (or its density p(x|z) at the drawn z).
_P_X_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log q(z|x)]", "E_p[log p(x,z)]"})
#: Terms that need the density p(x|z) at generated x, which an implicit generator does not have.
_P_DENSITY_TERMS = frozenset({"E_p[log p(x|z)]", "E_p[log p(x,z)]"})
#: Divergences between marginals or joints (the likelihood-free toolbox terms), by name -> pair.
_DIVERGENCE_PAIRS = {n: t.pair for n, t in TERMS.items() if t.divergence is not None and t.pair in ("x", "z", "x,z")}
#: Every name :meth:`LagrangianModule.estimate_terms` accepts.
ESTIMABLE_TERMS = _Q_TERMS | _P_TERMS | frozenset(_DIVERGENCE_PAIRS)


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


def parse_constraints(
    constraints: Mapping[str, Mapping[str, Any]], multiplier_max: float
) -> tuple[dict[str, float], dict[str, Fraction], dict[str, Lagrangian]]:
    """Budgets ε_i, initial λ_i and constraint Lagrangians C_i from ``{name: {lagrangian | preset
    [+ preset_params], epsilon, initial}}`` (e.g. ``{"neg_elbo": {"preset": "elbo", "epsilon": 88}}``)."""
    budgets, initial, pieces = {}, {}, {}
    for name, spec in constraints.items():
        where = f"constraints.{name}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a mapping with keys {', '.join(CONSTRAINT_KEYS)}, got {spec!r}")
        unknown = sorted(set(spec) - set(CONSTRAINT_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONSTRAINT_KEYS)}")
        if "epsilon" not in spec:
            raise ValueError(f"{where}.epsilon (the budget: the constraint's value must stay <= epsilon) is required")
        check_finite_number(f"{where}.epsilon", spec["epsilon"])
        start = spec.get("initial", 1.0)
        check_finite_number(f"{where}.initial", start, minimum=0.0)
        if start > multiplier_max:
            raise ValueError(f"{where}.initial={start} exceeds multiplier_max={multiplier_max}")
        pieces[name] = build_lagrangian(spec.get("lagrangian"), spec.get("preset"), spec.get("preset_params"))
        budgets[name] = float(spec["epsilon"])
        initial[name] = Fraction(start).limit_denominator(10**6)
    return budgets, initial, pieces


def check_trainable(compiled: CompiledObjective) -> None:
    """Refuse, before any training, an objective that is intractable or constant."""
    objective = compiled.lagrangian
    if not compiled.is_tractable:
        raise ValueError(
            f"{objective} cannot be trained: {compiled.message} (uncovered terms: {', '.join(compiled.uncovered_terms)})"
        )
    if not compiled.tractable_form:
        raise ValueError(f"{objective or 'the empty Lagrangian'} compiles to a constant: there is nothing to train")


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


def drop_fixed_hparams(module: LightningModule, fixed: Iterable[str]) -> None:
    """Remove from ``module.hparams`` the base-class arguments that a family module sets itself
    (Lightning merges every base class's arguments), so that ``type(module)(**hparams)`` rebuilds it."""
    module.remove_ignored_hparams([k for k in fixed if k in module.hparams])


def critic_key(term: str) -> str:
    """A module name for the critic of ``term`` (``JS(q(x,z)||p(x,z))`` -> ``JS_q_x_z_p_x_z``)."""
    return re.sub(r"\W+", "_", term).strip("_")


@contextlib.contextmanager
def uncounted_steps(optimizer: LightningOptimizer) -> Iterator[None]:
    """Critic steps that do not advance ``trainer.global_step``.

    Under manual optimisation Lightning counts every ``optimizer.step()`` as a global step
    (Lightning-AI/pytorch-lightning#17958), so ``max_steps`` and logging intervals would count critic
    updates too; here a step is one generator update, however many critic updates precede it.
    """
    before, after = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = _do_nothing
    try:
        yield
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


def _do_nothing() -> None:
    """A hook that does nothing."""


class LagrangianModule(LatentVariableModule):
    """Trains the compiled form of a Lagrangian (or preset) of the Information-Autoencoding family.

    The objective is ``lagrangian`` (term name -> coefficient, DESIGN.md names verbatim, e.g.
    ``{"I_q": -0.5, "KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1.5}``), or ``preset`` (a name of
    :data:`infoae_pl.objectives.PRESETS`, with ``preset_params``), or a preset plus extra terms.

    Divergences between marginals or joints are estimated per pair by ``z_divergence``,
    ``x_divergence`` and ``joint_divergence``: ``"mmd"`` (squared MMD, kernel ``mmd_kernel`` with
    ``mmd_kernel_bandwidth``, default exp(−‖·‖²/d)), ``"js"`` (a GAN discriminator) or ``"kl"`` (an
    f-GAN critic of the KL in the direction the term names), as the paper allows for any strict
    divergence.  With critics the module trains by alternation (manual optimisation):
    ``critic_steps`` critic updates (Adam, ``critic_lr``/``critic_betas``) on fresh samples, then one
    update of the encoder and generator; ``trainer.global_step`` counts the latter.  Critics are
    :class:`~infoae_pl.nets.MLPCritic` (``critic_hidden_dim``, ``critic_num_hidden_layers``,
    ``critic_activation``) wrapped in :class:`~infoae_pl.divergences.AdversarialDivergence`
    (``generator_loss``, ``gradient_penalty``).

    ``implicit_generator=True`` makes the generator G(z) = mean of p(x|z) (an implicit model, as in
    GANs; differentiable, so critics of x train it); otherwise generated x are draws from p(x|z).

    ``constraints`` (``{name: {lagrangian | preset [+ preset_params], epsilon, initial}}``) turns the
    objective into the primal's Lagrangian with learned multipliers: the objective above (the
    information preference) plus λ_i·(C_i − ε_i), each λ_i ≥ 0 updated every
    ``multiplier_update_every`` steps by ``multiplier_optimizer`` (sgd or adam, ``multiplier_lr``) and
    projected onto [0, ``multiplier_max``]; ``loss_terms`` adds ``constraint/``, ``slack/`` and
    ``lambda/`` entries per constraint, and the run ends with a table of active and slack constraints.
    The remaining arguments are :class:`LatentVariableModule`'s.  Objectives that are intractable,
    constant or not estimable with these choices raise ValueError here, before any training.

    ``loss_terms`` returns one estimate per compiled term under its algebra name and the loss
    Σ coefficients(step)[k] · terms[k] over the loss components (see :func:`loss_components`).
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = ("lagrangian", "preset", "preset_params")

    def __init__(
        self,
        lagrangian: dict[str, float] | None = None,
        preset: str | None = None,
        preset_params: dict[str, float] | None = None,
        z_divergence: str = "mmd",
        x_divergence: str = "js",
        joint_divergence: str = "js",
        mmd_kernel: str = "gaussian",
        mmd_kernel_bandwidth: float | str | None = None,
        implicit_generator: bool = False,
        critic_hidden_dim: int = 256,
        critic_num_hidden_layers: int = 2,
        critic_activation: str = "leaky_relu",
        critic_lr: float = 2e-4,
        critic_betas: Sequence[float] = (0.5, 0.999),
        critic_steps: int = 1,
        generator_loss: str = "non_saturating",
        gradient_penalty: float = 0.0,
        constraints: dict[str, dict[str, Any]] | None = None,
        multiplier_lr: float = 0.01,
        multiplier_optimizer: str = "sgd",
        multiplier_max: float = 1e4,
        multiplier_update_every: int = 1,
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
        estimators = {"z": z_divergence, "x": x_divergence, "x,z": joint_divergence}
        for option, value in zip(("z_divergence", "x_divergence", "joint_divergence"), estimators.values()):
            check_choice(option, value, DIVERGENCE_ESTIMATORS)
        kernel = make_kernel(mmd_kernel, mmd_kernel_bandwidth)
        check_int_at_least("critic_steps", critic_steps, 1)
        check_finite_number("critic_lr", critic_lr, minimum=0.0)
        if len(critic_betas) != 2 or not all(0.0 <= b < 1.0 for b in critic_betas):
            raise ValueError(f"critic_betas must be two numbers in [0, 1), got {tuple(critic_betas)!r}")
        dual = None
        if constraints:
            objective = build_lagrangian(lagrangian, preset, preset_params) if lagrangian or preset else Lagrangian()
            check_choice("multiplier_optimizer", multiplier_optimizer, MULTIPLIER_OPTIMIZERS)
            check_finite_number("multiplier_lr", multiplier_lr, minimum=0.0)
            check_finite_number("multiplier_max", multiplier_max, minimum=0.0)
            check_int_at_least("multiplier_update_every", multiplier_update_every, 1)
            budgets, initial, pieces = parse_constraints(constraints, multiplier_max)
            dual = compile_dual(objective, pieces, initial)
            compiled = compile_lagrangian(dual.lagrangian(initial))
        else:
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
        self.dual = dual
        if dual is not None:
            # Learned multipliers: the loss is O + Σ λ_i·C_i over the union of the pieces' terms.
            for form in (dual.objective_form, *dual.constraint_forms.values()):
                self.tractable_form.update({n: self.tractable_form.get(n, 0.0) for n in form})
            self.objective_components = loss_components(dual.objective_form)
            self.constraint_components = {n: loss_components(f) for n, f in dual.constraint_forms.items()}
            self.budgets = budgets
            self.register_buffer("multipliers", torch.tensor([float(initial[n]) for n in budgets]))
            self.register_buffer("constraint_average", torch.full((len(budgets),), math.nan))
            self.multiplier_settings = {
                "optimizer": multiplier_optimizer, "lr": multiplier_lr, "max": multiplier_max,
                "every": multiplier_update_every,
            }
            self._multiplier_optimizer: torch.optim.Optimizer | None = None
        self.kernel = kernel
        self.estimators = estimators
        # Kept as attributes, not read from hparams: subclasses keep only their own arguments there.
        self.implicit_generator = implicit_generator
        self.critic_steps = critic_steps
        self.critic_optimizer_settings = {"lr": critic_lr, "betas": tuple(critic_betas)}
        self._check_generator(implicit_generator)
        #: term name -> key in :attr:`critics`, for every divergence term estimated by a critic.
        self.critic_keys = {
            n: critic_key(n)
            for n in self.tractable_form
            if n in _DIVERGENCE_PAIRS and estimators[_DIVERGENCE_PAIRS[n]] != "mmd"
        }
        widths = {"x": data_dim, "z": latent_dim, "x,z": data_dim + latent_dim}
        self.critics = nn.ModuleDict(
            {
                key: AdversarialDivergence(
                    MLPCritic(
                        widths[_DIVERGENCE_PAIRS[term]],
                        critic_hidden_dim,
                        critic_num_hidden_layers,
                        critic_activation,
                    ),
                    divergence=estimators[_DIVERGENCE_PAIRS[term]],
                    generator_loss=generator_loss if estimators[_DIVERGENCE_PAIRS[term]] == "js" else "minimax",
                    gradient_penalty=gradient_penalty,
                )
                for term, key in self.critic_keys.items()
            }
        )
        # Alternating critic and generator updates need manual optimisation; without critics the
        # module keeps Lightning's automatic loop (and its numbers).
        self.automatic_optimization = not self.critic_keys

    def _check_generator(self, implicit: bool) -> None:
        """Refuse divergences of generated x that a Bernoulli decoder's draws could not train."""
        names = set(self.tractable_form)
        generated_x = [n for n in names if _DIVERGENCE_PAIRS.get(n) in ("x", "x,z")]
        if generated_x and not implicit and isinstance(self.decoder, BernoulliMLP):
            raise ValueError(
                f"{', '.join(sorted(generated_x))} compare generated x with data, and draws from a Bernoulli"
                " p(x|z) carry no gradient to the generator: set implicit_generator=True (G(z) = mean of p(x|z))"
                " or likelihood='gaussian'"
            )

    @property
    def has_likelihood(self) -> bool:
        """Whether ``decode`` is the model's density of x (an implicit generator has none)."""
        return not self.implicit_generator

    def sample_x(self, z: Tensor) -> Tensor:
        """Generated x for latents z: G(z) = mean of p(x|z) for an implicit generator, else a draw from p(x|z)."""
        p_x = self.decode(z)
        return p_x.mean if self.implicit_generator else draw_x(p_x)

    def coefficients(self, step: int) -> dict[str, float]:
        """Loss component name -> coefficient; stacked copies may vary the values.  With learned
        multipliers, O + Σ λ_i·C_i at the current λ."""
        if self.dual is None:
            return dict(self.components)
        coefficients = dict(self.objective_components)
        for multiplier, name in zip(self.multipliers.tolist(), self.budgets):
            for key, value in self.constraint_components[name].items():
                coefficients[key] = coefficients.get(key, 0.0) + multiplier * value
        return coefficients

    def estimate_terms(self, x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
        """Estimates of the named terms (any of :data:`ESTIMABLE_TERMS`) on the batch ``x``, in the order named.

        Draws only what the names need, in a fixed order: z ~ q(z|x), then z ~ p(z), then x ~ p(x|z).
        A divergence compares samples of its two sides: the batch's x and z ~ q(z|x) for q, and the
        z ~ p(z) draws with their generated x for p (the joint concatenates x and z).
        """
        names = list(dict.fromkeys(names))
        unknown = sorted(set(names) - ESTIMABLE_TERMS)
        if unknown:
            raise ValueError(f"no estimator for {', '.join(unknown)}; estimable: {', '.join(sorted(ESTIMABLE_TERMS))}")
        wanted = set(names)
        if self.implicit_generator and wanted & _P_DENSITY_TERMS:
            raise ValueError(
                f"an implicit generator has no density p(x|z) for {', '.join(sorted(wanted & _P_DENSITY_TERMS))}"
            )
        pairs = {_DIVERGENCE_PAIRS[n] for n in wanted if n in _DIVERGENCE_PAIRS}
        prior = self.prior()
        out: dict[str, Tensor] = {}
        if wanted & _Q_TERMS or pairs & {"z", "x,z"}:
            q_z = self.encode(x)
            z_q = rsample(q_z)
            out[_LOG_Q_ZX] = q_z.log_prob(z_q).mean(-1)
            out[_LOG_P_Z] = prior.log_prob(z_q).mean(-1)
            if wanted & {"E_q[log p(x|z)]", "E_q[log p(x,z)]"}:
                out["E_q[log p(x|z)]"] = self.decode(z_q).log_prob(x).mean(-1)
                out["E_q[log p(x,z)]"] = out["E_q[log p(x|z)]"] + out[_LOG_P_Z]
            if ANALYTIC_KL in wanted:
                out[ANALYTIC_KL] = kl_divergence(q_z, prior).mean(-1)
        if wanted & _P_TERMS or pairs:
            z_p = rsample(prior.expand(x.shape[:-1]))
            out["E_p[log p(z)]"] = prior.log_prob(z_p).mean(-1)
            if "z" in pairs:
                samples = {"q": z_q, "p": z_p}
                out.update(self._divergences(wanted, "z", samples))
            if wanted & _P_X_TERMS or pairs & {"x", "x,z"}:
                p_x = self.decode(z_p)
                if wanted & _P_DENSITY_TERMS:
                    out["E_p[log p(x|z)]"] = -p_x.entropy().mean(-1)
                    out["E_p[log p(x,z)]"] = out["E_p[log p(x|z)]"] + out["E_p[log p(z)]"]
                x_p = p_x.mean if self.implicit_generator else draw_x(p_x)
                if "E_p[log q(z|x)]" in wanted:
                    out["E_p[log q(z|x)]"] = self._expected_log_q_under_p(z_p, x_p, p_x)
                if "x" in pairs:
                    out.update(self._divergences(wanted, "x", {"q": x, "p": x_p}))
                if "x,z" in pairs:
                    joint = {"q": torch.cat([x, z_q], -1), "p": torch.cat([x_p, z_p], -1)}
                    out.update(self._divergences(wanted, "x,z", joint))
        return {n: out[n] for n in names}

    def _divergences(self, wanted: set[str], pair: str, samples: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every wanted divergence term over ``pair`` from ``samples`` ("q"/"p" -> sample of that side)."""
        out: dict[str, Tensor] = {}
        names = [n for n in _DIVERGENCE_PAIRS if _DIVERGENCE_PAIRS[n] == pair and n in wanted]
        if self.estimators[pair] == "mmd":
            return dict.fromkeys(names, mmd(samples["q"], samples["p"], self.kernel)) if names else out
        for name in names:
            first = TERMS[name].first
            second = "q" if first == "p" else "p"
            out[name] = self.critics[self.critic_keys[name]].estimate(samples[first], samples[second])
        return out

    def _expected_log_q_under_p(self, z_p: Tensor, x_p: Tensor, p_x: Distribution) -> Tensor:
        """E_p[log q(z|x)]: pathwise through x ~ p(x|z) when x carries gradients, else score function."""
        log_q = self.encode(x_p).log_prob(z_p)
        if self.implicit_generator or p_x.has_rsample:
            return log_q.mean(-1)
        return score_function_mean(log_q, p_x.log_prob(x_p))

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """``"loss"`` = Σ_k coefficients[k]·terms[k] over the loss components, plus every compiled
        term's estimate by name; ``coefficients`` default to :meth:`coefficients` and may be 0-d
        tensors (stacked copies)."""
        c = self.coefficients(self.global_step) if coefficients is None else coefficients
        names = (*c, *self.tractable_form)
        if self.dual is not None:
            names = (*names, *(k for components in self.constraint_components.values() for k in components))
        terms = self.estimate_terms(x, names)
        loss = sum(torch.as_tensor(c[k], dtype=terms[k].dtype) * terms[k] for k in c)
        out = {"loss": loss, **terms}
        if self.dual is not None:
            for multiplier, (name, budget) in zip(self.multipliers, self.budgets.items()):
                value = sum(v * terms[k].detach() for k, v in self.constraint_components[name].items())
                out[f"constraint/{name}"] = value
                out[f"slack/{name}"] = budget - value
                out[f"lambda/{name}"] = multiplier.clone()
        return out

    # Learned multipliers (only with constraints) ----------------------------------------------
    def update_multipliers(self, terms: dict[str, Tensor]) -> None:
        """One projected ascent step of each λ_i on λ_i·(C_i − ε_i), every ``multiplier_update_every`` steps."""
        values = torch.stack([terms[f"constraint/{n}"].detach() for n in self.budgets]).to(self.multipliers)
        average = self.constraint_average
        self.constraint_average = torch.where(average.isnan(), values, 0.98 * average + 0.02 * values)
        settings = self.multiplier_settings
        if (self.global_step + 1) % settings["every"]:
            return
        violation = values - torch.tensor(list(self.budgets.values()), dtype=values.dtype, device=values.device)
        if self._multiplier_optimizer is None:
            self._multiplier_optimizer = self._make_multiplier_optimizer()
        self.multipliers.grad = -violation  # ascent: the optimiser descends on −λ·(C − ε)
        self._multiplier_optimizer.step()
        self.multipliers.grad = None
        self.multipliers.clamp_(0.0, settings["max"])

    def _make_multiplier_optimizer(self) -> torch.optim.Optimizer:
        settings = self.multiplier_settings
        cls = torch.optim.SGD if settings["optimizer"] == "sgd" else torch.optim.Adam
        return cls([self.multipliers], lr=settings["lr"])

    def constraint_table(self, tolerance: float = 0.05) -> list[dict[str, Any]]:
        """Per constraint: budget ε, running mean of its value, λ, slack ε − value and its status:
        ``active`` (λ > 0 and |slack| ≤ ``tolerance``·|ε|), ``slack`` (inside the budget) or ``violated``."""
        rows = []
        for multiplier, average, (name, budget) in zip(
            self.multipliers.tolist(), self.constraint_average.tolist(), self.budgets.items()
        ):
            slack = budget - average
            band = tolerance * (abs(budget) or 1.0)
            status = "active" if multiplier > 0 and abs(slack) <= band else ("violated" if slack < -band else "slack")
            rows.append({"constraint": name, "epsilon": budget, "value": average, "lambda": multiplier,
                         "slack": slack, "status": status})
        return rows

    def on_train_end(self) -> None:
        if self.dual is None or not self.trainer.is_global_zero:
            return
        lines = ["learned multipliers (value: running mean over training steps):",
                 f"  {'constraint':<24} {'epsilon':>12} {'value':>12} {'lambda':>12} {'slack':>12}  status"]
        for row in self.constraint_table():
            lines.append(f"  {row['constraint']:<24} {row['epsilon']:>12.5g} {row['value']:>12.5g} "
                         f"{row['lambda']:>12.5g} {row['slack']:>12.5g}  {row['status']}")
        print("\n".join(lines))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._multiplier_state() is not None:
            checkpoint["multiplier_optimizer"] = self._multiplier_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.dual is not None and "multiplier_optimizer" in checkpoint:
            self._multiplier_optimizer = self._make_multiplier_optimizer()
            self._multiplier_optimizer.load_state_dict(checkpoint["multiplier_optimizer"])

    def _multiplier_state(self) -> dict[str, Any] | None:
        optimizer = getattr(self, "_multiplier_optimizer", None)
        return None if optimizer is None else optimizer.state_dict()

    # Adversarial training (only with critics) ---------------------------------------------------
    def critic_loss(self, x: Tensor) -> Tensor:
        """The critics' summed loss on fresh samples of both sides (the samples carry no gradient)."""
        with torch.no_grad():
            samples = self._critic_samples(x)
        return sum(self.critics[key].critic_loss(*samples[term]) for term, key in self.critic_keys.items())

    def _critic_samples(self, x: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """term -> (sample of the side named first, sample of the other side), drawn as in :meth:`estimate_terms`."""
        pairs = {_DIVERGENCE_PAIRS[n] for n in self.critic_keys}
        z_p = rsample(self.prior().expand(x.shape[:-1]))
        sides: dict[str, dict[str, Tensor]] = {}
        if pairs & {"z", "x,z"}:
            z_q = rsample(self.encode(x))
            sides["z"] = {"q": z_q, "p": z_p}
        if pairs & {"x", "x,z"}:
            x_p = self.sample_x(z_p)
            sides["x"] = {"q": x, "p": x_p}
        if "x,z" in pairs:
            sides["x,z"] = {side: torch.cat([sides["x"][side], sides["z"][side]], -1) for side in ("q", "p")}
        out = {}
        for term in self.critic_keys:
            first = TERMS[term].first
            second = "q" if first == "p" else "p"
            out[term] = (sides[_DIVERGENCE_PAIRS[term]][first], sides[_DIVERGENCE_PAIRS[term]][second])
        return out

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if self.automatic_optimization:
            terms = self.loss_terms(batch[0])
            self._check_finite(terms["loss"], terms)
            self._log_train_terms(terms)
            if self.dual is not None:
                self.update_multipliers(terms)
            return terms["loss"]
        x = batch[0]
        model_optimizer, critic_optimizer = self.optimizers()
        self.toggle_optimizer(critic_optimizer)
        with uncounted_steps(critic_optimizer):
            for _ in range(self.critic_steps):
                critic_loss = self.critic_loss(x)
                self._check_finite(critic_loss, {"critic_loss": critic_loss})
                critic_optimizer.zero_grad()
                self.manual_backward(critic_loss)
                critic_optimizer.step()
        self.untoggle_optimizer(critic_optimizer)
        self.toggle_optimizer(model_optimizer)
        terms = self.loss_terms(x)
        self._check_finite(terms["loss"], terms)
        model_optimizer.zero_grad()
        self.manual_backward(terms["loss"])
        model_optimizer.step()
        self.untoggle_optimizer(model_optimizer)
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        self._log_train_terms({**terms, "critic_loss": critic_loss.detach()})
        if self.dual is not None:
            self.update_multipliers(terms)
        return terms["loss"].detach()

    def configure_optimizers(self) -> Any:
        if self.automatic_optimization:
            return super().configure_optimizers()
        critic_ids = {id(p) for p in self.critics.parameters()}
        model_parameters = [p for p in self.parameters() if id(p) not in critic_ids]
        model = adam_with_schedule(model_parameters, self.hparams)
        critic = torch.optim.Adam(self.critics.parameters(), **self.critic_optimizer_settings)
        return [model if isinstance(model, dict) else {"optimizer": model}, {"optimizer": critic}]

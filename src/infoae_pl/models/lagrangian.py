"""The module that trains any compiled Lagrangian of the family: the optimisation schedule.

It composes the objective built from its config (:func:`infoae_pl.objectives.config.plan_loss`:
coefficients over loss components, with schedules and bounds), the term estimates
(:mod:`infoae_pl.models.estimation`), the critics of adversarially estimated divergences
(:mod:`infoae_pl.models.critics`) and learned multipliers (:mod:`infoae_pl.models.multipliers`),
and runs the training step: Lightning's automatic optimisation, or, with critics, alternating
critic and generator updates under manual optimisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from infoae_pl._compat import uncounted_optimizer_steps
from infoae_pl.divergences import CRITIC_DIVERGENCES, make_kernel
from infoae_pl.models.base import LatentVariableModule, adam_with_schedule, instantiate_part
from infoae_pl.models.critics import CRITIC_ARGUMENTS, Critics
from infoae_pl.models.estimation import DIVERGENCE_PAIRS, TermEstimator, draw_samples, draw_x
from infoae_pl.models.multipliers import LearnedMultipliers
from infoae_pl.nets import BernoulliMLP, MLPCritic
from infoae_pl.objectives.config import BOUND_PREFIX, plan_loss
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

#: Estimators of a divergence term, chosen per pair of variables (``x``, ``z`` or the joint ``x,z``).
DIVERGENCE_ESTIMATORS: tuple[str, ...] = ("mmd", *CRITIC_DIVERGENCES)


class LagrangianModule(LatentVariableModule):
    """Trains the compiled form of a Lagrangian (or preset) of the Information-Autoencoding family.

    The objective is ``lagrangian`` (term name -> coefficient, e.g. ``{"I_q": -0.5,
    "KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1.5}``), or ``preset`` (a name of
    :data:`infoae_pl.objectives.PRESETS`, with ``preset_params``), or a preset plus extra terms.
    ``schedules`` (``{component: {steps, value[, shape]}}``) set a loss component's coefficient for
    the first steps (e.g. a KL warm-up); ``bounds`` (``{E_q component: bound}``) cap an E_q term's
    batch estimate from above (e.g. the authors' bound on the reconstruction term).

    Divergences between marginals or joints are estimated per pair by ``z_divergence``,
    ``x_divergence`` and ``joint_divergence``: ``"mmd"`` (squared MMD, kernel ``mmd_kernel`` with
    ``mmd_kernel_bandwidth``, default exp(−‖·‖²/d)), ``"js"`` (a GAN discriminator) or ``"kl"`` (an
    f-GAN critic of the KL in the direction the term names). With critics the module trains by
    alternation: ``critic_steps`` critic updates (Adam, ``critic_lr``/``critic_betas``) on fresh
    samples, then one update of the encoder and generator; ``trainer.global_step`` counts the
    latter. A pair's critic network is the part ``x_critic``, ``z_critic`` or ``joint_critic`` (input
    ``[..., width]`` -> one logit per example), by default an :class:`~infoae_pl.nets.MLPCritic`
    (``critic_hidden_dim``, ``critic_num_hidden_layers``, ``critic_activation``); ``generator_loss``
    and ``gradient_penalty`` configure :class:`~infoae_pl.divergences.AdversarialDivergence`.

    ``implicit_generator=True`` makes the generator G(z) = mean of p(x|z) (an implicit model, as in
    GANs; differentiable, so critics of x train it); otherwise generated x are draws from p(x|z).

    ``constraints`` (``{name: {lagrangian | preset [+ preset_params], epsilon, initial}}``) turns the
    objective into the primal's Lagrangian with learned multipliers: the objective plus
    λ_i·(C_i − ε_i), each λ_i ≥ 0 updated every ``multiplier_update_every`` steps by
    ``multiplier_optimizer`` (sgd or adam, ``multiplier_lr``) and projected onto
    [0, ``multiplier_max``]; ``loss_terms`` adds ``constraint/``, ``slack/`` and ``lambda/`` entries
    per constraint, and the run ends with a table of active and slack constraints.
    The remaining arguments are :class:`LatentVariableModule`'s. Objectives that are intractable,
    constant or not estimable with these choices raise ValueError here, before any training.

    ``loss_terms`` returns one estimate per compiled term under its algebra name and the loss
    Σ_k coefficients(step)[k] · terms[k] over the loss components.
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = ("lagrangian", "preset", "preset_params", "schedules", "bounds")

    def __init__(
        self,
        lagrangian: dict[str, float] | None = None,
        preset: str | None = None,
        preset_params: dict[str, float] | None = None,
        schedules: dict[str, dict[str, Any]] | None = None,
        bounds: dict[str, float] | None = None,
        z_divergence: str = "mmd",
        x_divergence: str = "js",
        joint_divergence: str = "js",
        mmd_kernel: str = "gaussian",
        mmd_kernel_bandwidth: float | str | None = None,
        implicit_generator: bool = False,
        x_critic: nn.Module | None = None,
        z_critic: nn.Module | None = None,
        joint_critic: nn.Module | None = None,
        critic_hidden_dim: int = 256,
        critic_num_hidden_layers: int = 2,
        critic_activation: str = "leaky_relu",
        critic_lr: float = 2e-4,
        critic_betas: tuple[float, float] = (0.5, 0.999),
        critic_steps: int = 1,
        generator_loss: str = "non_saturating",
        gradient_penalty: float = 0.0,
        constraints: dict[str, dict[str, Any]] | None = None,
        multiplier_lr: float = 0.01,
        multiplier_optimizer: str = "sgd",
        multiplier_max: float = 1e4,
        multiplier_update_every: int = 1,
        **kwargs: Any,
    ) -> None:
        estimators = {"z": z_divergence, "x": x_divergence, "x,z": joint_divergence}
        for option, value in zip(("z_divergence", "x_divergence", "joint_divergence"), estimators.values()):
            check_choice(option, value, DIVERGENCE_ESTIMATORS)
        kernel = make_kernel(mmd_kernel, mmd_kernel_bandwidth)
        check_int_at_least("critic_steps", critic_steps, 1)
        check_finite_number("critic_lr", critic_lr, minimum=0.0)
        if len(critic_betas) != 2 or not all(0.0 <= b < 1.0 for b in critic_betas):
            raise ValueError(f"critic_betas must be two numbers in [0, 1), got {tuple(critic_betas)!r}")
        plan = plan_loss(lagrangian, preset, preset_params, constraints, multiplier_max, schedules, bounds)
        multipliers = (
            LearnedMultipliers(plan.budgets, plan.initial, multiplier_optimizer, multiplier_lr,
                               multiplier_max, multiplier_update_every) if constraints else None
        )
        super().__init__(**kwargs)
        #: What the loss is made of: the compiled objective, components, schedules, bounds, constraints.
        self.plan = plan
        #: The compiled objective over toolbox terms, as floats (term name -> coefficient).
        self.tractable_form = self.plan.tractable_form
        self.implicit_generator = implicit_generator
        self._check_generator(implicit_generator)
        self.multipliers = multipliers
        divergences = {n: estimators[DIVERGENCE_PAIRS[n]] for n in self.tractable_form
                       if n in DIVERGENCE_PAIRS and estimators[DIVERGENCE_PAIRS[n]] != "mmd"}
        latent_dim, data_dim = self.latent_dim, self.data_dim
        parts = {"x": x_critic, "z": z_critic, "x,z": joint_critic}
        self.critics = Critics(
            divergences,
            {pair: instantiate_part(CRITIC_ARGUMENTS[pair], part) for pair, part in parts.items()},
            lambda width: MLPCritic(width, critic_hidden_dim, critic_num_hidden_layers, critic_activation),
            {"x": data_dim, "z": latent_dim, "x,z": data_dim + latent_dim},
            generator_loss, gradient_penalty, critic_steps, critic_lr, tuple(critic_betas),
        )
        self.estimator = TermEstimator(estimators, kernel, self.critics)
        # Alternating critic and generator updates need manual optimisation; without critics the
        # module keeps Lightning's automatic loop (and its numbers).
        self.automatic_optimization = not divergences

    @property
    def critic_keys(self) -> dict[str, str]:
        """Term name -> key in :attr:`critics`, for every divergence term estimated by a critic."""
        return self.critics.keys_by_term

    def _check_generator(self, implicit: bool) -> None:
        """Refuse divergences of generated x that a Bernoulli decoder's draws could not train."""
        names = set(self.tractable_form)
        generated_x = [n for n in names if DIVERGENCE_PAIRS.get(n) in ("x", "x,z")]
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

    def log_q_generated(self, x: Tensor, z: Tensor) -> Tensor:
        """log q(z|x) per generated pair (x, z) ~ p(x, z): the integrand of E_p[log q(z|x)]."""
        return self.encode(x).log_prob(z)

    def coefficients(self, step: int) -> dict[str, float]:
        """Loss component name -> coefficient at ``step`` (schedules applied; with learned multipliers,
        O + Σ λ_i·C_i at the current λ), plus ``bound/<component>`` entries; stacked copies may vary the values."""
        return self.plan.coefficients(step, None if self.multipliers is None else self.multipliers.values())

    def estimate_terms(self, x: Tensor, names: Iterable[str]) -> dict[str, Tensor]:
        """Estimates of the named terms (see :mod:`infoae_pl.models.estimation`) on the batch ``x``, in the order named."""
        return self.estimator.estimate(self, x, names)

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """``"loss"`` = Σ_k coefficients[k]·terms[k] over the loss components (a bounded component's
        estimate capped first), plus every compiled term's estimate by name; ``coefficients`` default
        to :meth:`coefficients` and may be 0-d tensors (stacked copies)."""
        c = self.coefficients(self.global_step) if coefficients is None else coefficients
        multipliers = {k: v for k, v in c.items() if not k.startswith(BOUND_PREFIX)}
        terms = self.estimate_terms(x, (*multipliers, *self.plan.loss_terms))
        loss = sum(torch.as_tensor(v, dtype=terms[k].dtype) * self._bounded(terms[k], c.get(BOUND_PREFIX + k))
                   for k, v in multipliers.items())
        out = {"loss": loss, **terms}
        if self.multipliers is not None:
            values = {name: sum(v * terms[k].detach() for k, v in components.items())
                      for name, components in self.plan.constraint_components.items()}
            out.update(self.multipliers.log_entries(values))
        return out

    @staticmethod
    def _bounded(value: Tensor, bound: Tensor | float | None) -> Tensor:
        """``value`` capped at ``bound`` (no cap for None)."""
        return value if bound is None else torch.minimum(value, torch.as_tensor(bound, dtype=value.dtype))

    def update_multipliers(self, terms: dict[str, Tensor]) -> None:
        """One projected ascent step of the learned multipliers (see :class:`LearnedMultipliers`)."""
        self.multipliers.update(terms, self.global_step)

    def on_train_end(self) -> None:
        if self.multipliers is not None and self.trainer.is_global_zero:
            print(self.multipliers.format_table())

    # Adversarial training (only with critics) ---------------------------------------------------
    def critic_loss(self, x: Tensor) -> Tensor:
        """The critics' summed loss on fresh samples of both sides (the samples carry no gradient)."""
        pairs = self.critics.pairs
        with torch.no_grad():
            samples = draw_samples(self, x, q=bool(pairs & {"z", "x,z"}), p=True,
                                   generated_x=bool(pairs & {"x", "x,z"}), prior_first=True)
        return self.critics.loss(samples)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        if self.automatic_optimization:
            terms = self.loss_terms(batch[0])
            self._check_finite(terms["loss"], terms)
            self._log_train_terms(terms)
            if self.multipliers is not None:
                self.update_multipliers(terms)
            return terms["loss"]
        x = batch[0]
        model_optimizer, critic_optimizer = self.optimizers()
        self.toggle_optimizer(critic_optimizer)
        with uncounted_optimizer_steps(critic_optimizer):
            for _ in range(self.critics.steps):
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
        if self.multipliers is not None:
            self.update_multipliers(terms)
        return terms["loss"].detach()

    def configure_optimizers(self) -> Any:
        if self.automatic_optimization:
            return super().configure_optimizers()
        critic_parameters = self.critic_parameters()
        critic_ids = {id(p) for p in critic_parameters}
        model_parameters = [p for p in self.parameters() if id(p) not in critic_ids]
        model = adam_with_schedule(model_parameters, self.optimizer_settings)
        return [model if isinstance(model, dict) else {"optimizer": model}, {"optimizer": self.critics.optimizer(critic_parameters)}]

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic step trains (the critics' parameters); the model step trains every other one."""
        return list(self.critics.parameters())

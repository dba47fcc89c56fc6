"""β-ELBO (β-VAE): −E_q[log p(x|z)] + β·KL(q(z|x)‖p(z)), the ``beta_elbo`` preset of eq. (14)/(15)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from infoae_pl.models.lagrangian import ANALYTIC_KL, LagrangianModule
from infoae_pl.validation import check_finite_number

_RECONSTRUCTION = "E_q[log p(x|z)]"


class BetaELBO(LagrangianModule):
    """β-VAE with an optional KL warm-up and an optional upper bound on the mutual-information term.

    The ``beta_elbo`` preset of :class:`LagrangianModule`: its compiled form −E_q[log p(x|z)]
    + β·(E_q[log q(z|x)] − E_q[log p(z)]) is trained with the analytic KL, plus the schedule and the
    bound below.  Terms (nats, summed over data dimensions, averaged over the batch): ``recon_nll`` =
    −E_q[log p(x|z)] (one reparameterised z per x), ``kl`` = E_x KL(q(z|x)‖p(z)) (analytic),
    ``loss`` = max(recon_nll, −mi_bound) + w·kl, where w = ``kl_warmup_weight`` for the first
    ``kl_warmup_steps`` steps and β after. ``mi_bound`` clips the batch-mean reconstruction term, as
    in the authors' Figure 1 code, so E_q[log p(x|z)] contributes at most ``mi_bound`` nats.  Every
    compiled term's Monte-Carlo estimate is returned too, under its algebra name.
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = ("beta", "kl_warmup_steps", "kl_warmup_weight", "mi_bound")

    def __init__(
        self,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        kl_warmup_weight: float = 0.01,
        mi_bound: float | None = None,
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
        check_finite_number("beta", beta, minimum=0.0)
        check_finite_number("kl_warmup_weight", kl_warmup_weight, minimum=0.0)
        if not isinstance(kl_warmup_steps, int) or kl_warmup_steps < 0:
            raise ValueError(f"kl_warmup_steps must be a non-negative integer, got {kl_warmup_steps!r}")
        if mi_bound is not None:
            check_finite_number("mi_bound", mi_bound, minimum=0.0)
        super().__init__(
            preset="beta_elbo",
            preset_params={"beta": beta},
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
        # Keep only this class's own arguments (Lightning merges the base's), so BetaELBO(**hparams) rebuilds it.
        own = inspect.signature(BetaELBO.__init__).parameters
        self.remove_ignored_hparams([k for k in list(self.hparams) if k not in own])
        self.save_hyperparameters()

    def coefficients(self, step: int) -> dict[str, float]:
        """The multipliers in force at ``step``: the KL weight (warm-up weight, then β) and the MI bound."""
        hp = self.hparams
        return {
            "kl_weight": hp.kl_warmup_weight if step < hp.kl_warmup_steps else hp.beta,
            "mi_bound": math.inf if hp.mi_bound is None else hp.mi_bound,
        }

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """The β-ELBO terms of ``x`` (reduced over the last batch dimension); ``coefficients`` default
        to :meth:`coefficients` at the current step and may be tensors (stacked copies)."""
        c = self.coefficients(self.global_step) if coefficients is None else coefficients
        terms = self.estimate_terms(x, (_RECONSTRUCTION, ANALYTIC_KL, *self.tractable_form))
        recon_nll = -terms[_RECONSTRUCTION]
        kl = terms[ANALYTIC_KL]
        kl_weight = torch.as_tensor(c["kl_weight"], dtype=kl.dtype)
        mi_bound = torch.as_tensor(c["mi_bound"], dtype=kl.dtype)
        return {
            "loss": torch.maximum(recon_nll, -mi_bound) + kl_weight * kl,
            "recon_nll": recon_nll,
            "kl": kl,
            "elbo": -(recon_nll + kl),
            "kl_weight": kl_weight,
            **{name: terms[name] for name in self.tractable_form},
        }

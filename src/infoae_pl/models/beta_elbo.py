"""β-ELBO (β-VAE): −E_q[log p(x|z)] + β·KL(q(z|x)‖p(z)), the ``beta_elbo`` preset with Figure 1's options."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from infoae_pl.models.lagrangian import LagrangianModule
from infoae_pl.objectives.config import ANALYTIC_KL
from infoae_pl.validation import check_finite_number, check_int_at_least

#: The reconstruction term that ``mi_bound`` caps.
RECONSTRUCTION = "E_q[log p(x|z)]"


class BetaELBO(LagrangianModule):
    """β-VAE with an optional KL warm-up and an optional upper bound on the mutual-information term.

    The ``beta_elbo`` preset of :class:`LagrangianModule`, compiled to −E_q[log p(x|z)] + β·KL with
    the analytic KL, and two options that are the Lagrangian module's schedules and bounds:
    ``kl_warmup_steps``/``kl_warmup_weight`` (the KL's coefficient is ``kl_warmup_weight`` for the
    first steps, then β) and ``mi_bound`` (the batch-mean E_q[log p(x|z)] is capped at ``mi_bound``
    nats, as in the authors' Figure 1 code). Besides the compiled terms it logs ``recon_nll`` =
    −E_q[log p(x|z)], ``kl`` = E_x KL(q(z|x)‖p(z)), ``elbo`` and ``kl_weight`` (nats, summed over
    data dimensions, averaged over the batch). Every other argument is :class:`LagrangianModule`'s.
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = (
        *LagrangianModule.COEFFICIENT_HPARAMS, "beta", "kl_warmup_steps", "kl_warmup_weight", "mi_bound"
    )
    FIXED_HPARAMS: ClassVar[tuple[str, ...]] = ("preset", "preset_params", "schedules", "bounds")

    def __init__(
        self,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        kl_warmup_weight: float = 0.01,
        mi_bound: float | None = None,
        **kwargs: Any,
    ) -> None:
        check_finite_number("beta", beta, minimum=0.0)
        check_finite_number("kl_warmup_weight", kl_warmup_weight, minimum=0.0)
        check_int_at_least("kl_warmup_steps", kl_warmup_steps, 0)
        if mi_bound is not None:
            check_finite_number("mi_bound", mi_bound, minimum=0.0)
        self.refuse_fixed(kwargs)
        super().__init__(
            preset="beta_elbo",
            preset_params={"beta": beta},
            schedules={ANALYTIC_KL: {"steps": kl_warmup_steps, "value": kl_warmup_weight}},
            bounds=None if mi_bound is None else {RECONSTRUCTION: mi_bound},
            **kwargs,
        )

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """:meth:`LagrangianModule.loss_terms` plus the β-VAE's usual names for its parts."""
        c = self.coefficients(self.global_step) if coefficients is None else coefficients
        terms = super().loss_terms(x, c)
        recon_nll, kl = -terms[RECONSTRUCTION], terms[ANALYTIC_KL]
        extra = {"recon_nll": recon_nll, "kl": kl, "elbo": -(recon_nll + kl), "kl_weight": torch.as_tensor(c[ANALYTIC_KL], dtype=kl.dtype)}
        return {"loss": terms.pop("loss"), **extra, **terms}

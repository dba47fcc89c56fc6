"""InfoVAE and the adversarial autoencoder: the β-ELBO plus λ times a divergence between q(z) and p(z)."""

from __future__ import annotations

from typing import Any, ClassVar

from infoae_pl.models.lagrangian import LagrangianModule
from infoae_pl.validation import check_finite_number

#: The divergence term the InfoVAE adds; which estimator replaces it is ``z_divergence``.
LATENT_DIVERGENCE = "D(q(z)||p(z))"


class InfoVAE(LagrangianModule):
    """InfoVAE, section 4.2: β-ELBO + λ·D(q(z)||p(z)), i.e. Theorem 2's InfoVAE with α = β − 1.

    ``z_divergence="mmd"`` (default) is the MMD-InfoVAE; ``"js"`` estimates D with a GAN
    discriminator on z, the adversarial autoencoder (β = 0, λ = 1 is section 2.5's AAE); ``"kl"``
    with an f-GAN critic.  Every other argument is :class:`LagrangianModule`'s.
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = (*LagrangianModule.COEFFICIENT_HPARAMS, "beta", "lam")
    FIXED_HPARAMS: ClassVar[tuple[str, ...]] = ("preset", "preset_params", "lagrangian")

    def __init__(self, beta: float = 1.0, lam: float = 1000.0, z_divergence: str = "mmd", **kwargs: Any) -> None:
        check_finite_number("beta", beta)
        check_finite_number("lam", lam, minimum=0.0)
        self.refuse_fixed(kwargs)
        super().__init__(
            preset="beta_elbo",
            preset_params={"beta": beta},
            lagrangian={LATENT_DIVERGENCE: lam},
            z_divergence=z_divergence,
            **kwargs,
        )

"""LightningModules: a shared base and thin family modules."""

from infoae_pl.models.base import LatentVariableModule, NonFiniteLossError
from infoae_pl.models.beta_elbo import BetaELBO
from infoae_pl.models.cyclegan import CycleGAN
from infoae_pl.models.infobigan import InfoBiGAN
from infoae_pl.models.infogan import InfoGAN
from infoae_pl.models.infovae import InfoVAE
from infoae_pl.models.lagrangian import LagrangianModule

__all__ = [
    "BetaELBO",
    "CycleGAN",
    "InfoBiGAN",
    "InfoGAN",
    "InfoVAE",
    "LagrangianModule",
    "LatentVariableModule",
    "NonFiniteLossError",
]

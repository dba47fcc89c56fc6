"""LightningModules: a shared base and thin family modules."""

from infoae_pl.models.base import LatentVariableModule, NonFiniteLossError
from infoae_pl.models.beta_elbo import BetaELBO
from infoae_pl.models.lagrangian import LagrangianModule

__all__ = ["BetaELBO", "LagrangianModule", "LatentVariableModule", "NonFiniteLossError"]

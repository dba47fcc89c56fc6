"""LightningModules: a shared base and thin family modules."""

from infoae_pl.models.base import LatentVariableModule, NonFiniteLossError
from infoae_pl.models.beta_elbo import BetaELBO

__all__ = ["BetaELBO", "LatentVariableModule", "NonFiniteLossError"]

"""Encoders, decoders and the probabilistic interface (``prior``/``encode``/``decode``)."""

from infoae_pl.nets.critic import MLPCritic
from infoae_pl.nets.heads import (
    LIKELIHOODS,
    STD_TRANSFORMS,
    BernoulliMLP,
    GaussianMLP,
    rsample,
    standard_normal_prior,
)
from infoae_pl.nets.interface import ImplicitGenerator, LatentVariableModel
from infoae_pl.nets.mlp import ACTIVATIONS, INITS, mlp

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LIKELIHOODS",
    "STD_TRANSFORMS",
    "BernoulliMLP",
    "GaussianMLP",
    "ImplicitGenerator",
    "LatentVariableModel",
    "MLPCritic",
    "mlp",
    "rsample",
    "standard_normal_prior",
]

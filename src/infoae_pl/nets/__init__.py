"""Encoders, decoders and the probabilistic interface (``prior``/``encode``/``decode``)."""

from infoae_pl.nets.augment import RandomAffine
from infoae_pl.nets.conv import IMAGE_DIM, IMAGE_SHAPE, ConvCritic, ConvDecoder, ConvEncoder, ConvJointCritic
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
    "IMAGE_DIM",
    "IMAGE_SHAPE",
    "INITS",
    "LIKELIHOODS",
    "STD_TRANSFORMS",
    "BernoulliMLP",
    "ConvCritic",
    "ConvDecoder",
    "ConvEncoder",
    "ConvJointCritic",
    "GaussianMLP",
    "ImplicitGenerator",
    "LatentVariableModel",
    "MLPCritic",
    "RandomAffine",
    "mlp",
    "rsample",
    "standard_normal_prior",
]

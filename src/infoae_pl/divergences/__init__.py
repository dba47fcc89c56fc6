"""Divergence estimators on distributions and samples: analytic Gaussian KL, MMD and critic-based bounds."""

from infoae_pl.divergences.adversarial import CRITIC_DIVERGENCES, GENERATOR_LOSSES, AdversarialDivergence
from infoae_pl.divergences.gaussian import kl_diag_gaussian_standard_normal, kl_divergence
from infoae_pl.divergences.mmd import (
    KERNELS,
    Kernel,
    gaussian_kernel,
    inverse_multiquadric_kernel,
    make_kernel,
    median_heuristic_bandwidth,
    mmd,
    squared_distances,
)

__all__ = [
    "CRITIC_DIVERGENCES",
    "GENERATOR_LOSSES",
    "KERNELS",
    "AdversarialDivergence",
    "Kernel",
    "gaussian_kernel",
    "inverse_multiquadric_kernel",
    "kl_diag_gaussian_standard_normal",
    "kl_divergence",
    "make_kernel",
    "median_heuristic_bandwidth",
    "mmd",
    "squared_distances",
]

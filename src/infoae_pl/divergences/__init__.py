"""Divergence estimators on distributions and samples: analytic Gaussian KL and MMD."""

from infoae_pl.divergences.gaussian import kl_diag_gaussian_standard_normal, kl_divergence
from infoae_pl.divergences.mmd import Kernel, gaussian_kernel, mmd, squared_distances

__all__ = [
    "Kernel",
    "gaussian_kernel",
    "kl_diag_gaussian_standard_normal",
    "kl_divergence",
    "mmd",
    "squared_distances",
]

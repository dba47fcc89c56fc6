"""Evaluation: estimators, torchmetrics Metrics, sampling helpers, figures and the Lightning callback."""

from infoae_pl.evaluation.callback import NLL_ESTIMATORS, EvaluationCallback
from infoae_pl.evaluation.estimators import (
    DEFAULT_CHUNK_SIZE,
    aggregate_posterior_mi,
    barber_agakov_mi,
    elbo,
    importance_sampled_log_likelihood,
    prior_sampled_log_likelihood,
    quadrature_log_likelihood,
)
from infoae_pl.evaluation.figures import (
    density_figure,
    image_grid,
    image_grid_figure,
    save_figure,
    scatter_figure,
)
from infoae_pl.evaluation.metrics import (
    AggregatePosteriorMI,
    BarberAgakovMI,
    GeneratedDataMMD,
    ImportanceSampledNLL,
    LatentMMD,
    ModeCoverage,
    NegativeELBO,
    PriorSampledNLL,
    QuadratureNLL,
    ReconstructionError,
)
from infoae_pl.evaluation.sampling import decoded_x, generate, has_likelihood, reconstruct

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "NLL_ESTIMATORS",
    "AggregatePosteriorMI",
    "BarberAgakovMI",
    "EvaluationCallback",
    "GeneratedDataMMD",
    "ImportanceSampledNLL",
    "LatentMMD",
    "ModeCoverage",
    "NegativeELBO",
    "PriorSampledNLL",
    "QuadratureNLL",
    "ReconstructionError",
    "aggregate_posterior_mi",
    "barber_agakov_mi",
    "decoded_x",
    "density_figure",
    "elbo",
    "generate",
    "has_likelihood",
    "image_grid",
    "image_grid_figure",
    "importance_sampled_log_likelihood",
    "prior_sampled_log_likelihood",
    "quadrature_log_likelihood",
    "reconstruct",
    "save_figure",
    "scatter_figure",
]

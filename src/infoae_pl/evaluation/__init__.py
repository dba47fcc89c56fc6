"""Evaluation: per-example estimators, torchmetrics Metrics, figures and the Lightning callback."""

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
from infoae_pl.evaluation.figures import density_figure, image_grid, image_grid_figure, save_figure
from infoae_pl.evaluation.metrics import (
    AggregatePosteriorMI,
    BarberAgakovMI,
    ImportanceSampledNLL,
    LatentMMD,
    NegativeELBO,
    PriorSampledNLL,
    QuadratureNLL,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "NLL_ESTIMATORS",
    "AggregatePosteriorMI",
    "BarberAgakovMI",
    "EvaluationCallback",
    "ImportanceSampledNLL",
    "LatentMMD",
    "NegativeELBO",
    "PriorSampledNLL",
    "QuadratureNLL",
    "aggregate_posterior_mi",
    "barber_agakov_mi",
    "density_figure",
    "elbo",
    "image_grid",
    "image_grid_figure",
    "importance_sampled_log_likelihood",
    "prior_sampled_log_likelihood",
    "quadrature_log_likelihood",
    "save_figure",
]

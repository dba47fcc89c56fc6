"""The torchmetrics wrappers accumulate over batches exactly like the estimators on all the data."""

from __future__ import annotations

import pytest
import torch

from infoae_pl.evaluation import (
    AggregatePosteriorMI,
    BarberAgakovMI,
    ImportanceSampledNLL,
    LatentMMD,
    NegativeELBO,
    PriorSampledNLL,
    QuadratureNLL,
    aggregate_posterior_mi,
    barber_agakov_mi,
    elbo,
    prior_sampled_log_likelihood,
)


def test_deterministic_nll_metrics_equal_the_exact_nll_over_batches(make_linear_gaussian) -> None:
    model = make_linear_gaussian(data_dim=3, latent_dim=1, scales=[1.5])
    x = model.sample_data(30)
    exact = -model.marginal().log_prob(x).mean()
    for metric in (ImportanceSampledNLL(num_samples=4, chunk_size=9), QuadratureNLL(grid_size=3001)):
        for batch in x.split(7):
            metric.update(model, batch)
        value = metric.compute()
        assert value.dtype == torch.float64
        torch.testing.assert_close(value, exact.detach(), rtol=0, atol=1e-8)


@pytest.mark.parametrize(
    ("metric", "per_example"),
    [
        (PriorSampledNLL(num_samples=200), lambda m, x: -prior_sampled_log_likelihood(m, x, 200)),
        (NegativeELBO(num_samples=3), lambda m, x: -elbo(m, x, 3)),
        (BarberAgakovMI(data_entropy=2.5, num_samples=3), lambda m, x: barber_agakov_mi(m, x, 2.5, 3)),
    ],
    ids=["prior", "elbo", "barber_agakov"],
)
def test_stochastic_metrics_average_the_per_example_estimates(
    make_linear_gaussian, metric, per_example
) -> None:
    model = make_linear_gaussian(data_dim=3, latent_dim=2, posterior_shift=0.3)
    batches = model.sample_data(25).split(10)
    torch.manual_seed(5)
    for batch in batches:
        metric.update(model, batch)
    torch.manual_seed(5)
    expected = torch.cat([per_example(model, batch) for batch in batches]).mean()
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-12, atol=1e-12)


def test_sum_states_merge_like_a_ddp_reduction(make_linear_gaussian) -> None:
    model = make_linear_gaussian(data_dim=3, latent_dim=2)
    x = model.sample_data(21)
    whole, first, second = (
        ImportanceSampledNLL(num_samples=2),
        ImportanceSampledNLL(2),
        ImportanceSampledNLL(2),
    )
    whole.update(model, x)
    first.update(model, x[:5])
    second.update(model, x[5:])
    first.merge_state(second)
    torch.testing.assert_close(first.compute(), whole.compute(), rtol=1e-12, atol=1e-12)
    assert whole.total.dtype == torch.float64


def test_aggregate_posterior_mi_keeps_a_bounded_set_of_inputs(make_linear_gaussian) -> None:
    model = make_linear_gaussian(data_dim=4, latent_dim=2, posterior_scale=1.2)
    x = model.sample_data(50)
    metric = AggregatePosteriorMI(max_examples=33, num_samples=2, chunk_size=40)
    for batch in x.split(8):
        metric.update(model, batch)
    assert sum(len(kept) for kept in metric.inputs) == 33
    torch.manual_seed(9)
    value = metric.compute()
    torch.manual_seed(9)
    expected = aggregate_posterior_mi(model, x[:33], num_samples=2).mean()
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)


def test_latent_mmd_is_small_for_a_matched_aggregate_posterior(make_linear_gaussian) -> None:
    torch.manual_seed(0)
    # With the exact posterior and data from the model, q(z) is exactly p(z).
    matched = make_linear_gaussian(data_dim=4, latent_dim=2)
    shifted = make_linear_gaussian(data_dim=4, latent_dim=2, posterior_shift=0.5)
    x = matched.sample_data(600)
    values = {}
    for name, model in (("matched", matched), ("shifted", shifted)):
        metric = LatentMMD(max_examples=500)
        for batch in x.split(100):
            metric.update(model, batch)
        assert sum(len(kept) for kept in metric.posterior_samples) == 500
        values[name] = metric.compute().item()
    assert abs(values["matched"]) < 0.005
    assert values["shifted"] > 10 * 0.005

"""Annealed importance sampling against independent truths: the linear-Gaussian closed form, quadrature
on a 2-D nonlinear model (bidirectional Monte Carlo), and importance sampling on a trained MNIST model."""

from __future__ import annotations

import math

import pytest
import torch

from infoae_pl.evaluation import (
    AISNLL,
    annealed_importance_sampling,
    importance_sampled_log_likelihood,
    prior_sampled_log_likelihood,
    reverse_ais_log_likelihood,
)
from infoae_pl.evaluation.ais import sigmoid_schedule


@pytest.fixture(autouse=True)
def _one_thread():
    """AIS on these small models is a long loop of small tensor operations: a second thread brings no
    speed and, on a loaded machine, made them 30x slower; restore the suite's setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _budget(num_steps: int, num_chains: int, leapfrog_steps: int) -> int:
    """Evaluations of log p(x, z) (with its gradient) per x: the start, then every leapfrog step."""
    return num_chains * (1 + (num_steps - 1) * leapfrog_steps)


def test_the_schedule_runs_from_zero_to_one_increasing() -> None:
    betas = sigmoid_schedule(50)
    assert betas.shape == (51,) and betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())
    assert sigmoid_schedule(1).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("initial", "posterior_shift", "posterior_scale"),
    [("prior", 0.0, 1.0), ("posterior", 1.0, 3.0)],
    ids=["from-the-prior", "from-a-shifted-wide-encoder"],
)
def test_ais_recovers_the_linear_gaussian_log_likelihood_where_importance_sampling_cannot(
    make_linear_gaussian, initial, posterior_shift, posterior_scale
) -> None:
    """z in 6-D, posterior std ≈ 0.2 per axis: the prior (or an encoder off by 5 posterior sds and 3x too
    wide) is a poor proposal. With the same number of evaluations of p(x, z) per x, AIS lands within
    0.05 nats of the closed-form log p(x) on average over 50 x, importance sampling misses by more."""
    model = make_linear_gaussian(
        data_dim=20, latent_dim=6, scales=[1.0 + 0.1 * i for i in range(6)], noise_std=0.2,
        posterior_shift=posterior_shift, posterior_scale=posterior_scale,
    ).requires_grad_(False)
    x = model.sample_data(50)
    truth = model.marginal().log_prob(x)
    settings = dict(num_steps=1000, num_chains=32, leapfrog_steps=1)
    result = annealed_importance_sampling(model, x, initial=initial, **settings)
    ais_error = (result.log_likelihood() - truth).mean().item()
    budget = _budget(**settings)
    if initial == "prior":
        importance = prior_sampled_log_likelihood(model, x, budget)
    else:
        importance = importance_sampled_log_likelihood(model, x, budget)
    importance_error = (importance - truth).mean().item()
    print(f"\n{initial}: AIS error {ais_error:+.4f} nats, IS error {importance_error:+.4f} (budget {budget}/x)")
    assert abs(ais_error) < 0.05
    assert importance_error < -0.2  # a lower bound that has not converged
    assert 0.5 < result.acceptance.mean().item() < 0.8  # adapted toward the 0.65 target


def test_bidirectional_monte_carlo_sandwiches_the_quadrature_truth_and_narrows(nonlinear_toy, record_property) -> None:
    """Data simulated from a nonlinear decoder with a 2-D latent: forward AIS from the prior ≤ log p(x)
    ≤ reverse AIS from the true z (on average over 40 x, up to Monte-Carlo error), and the sandwich's
    width shrinks as intermediate distributions are added."""
    x, z = nonlinear_toy.simulate(40)
    truth = nonlinear_toy.quadrature_log_likelihood(x)
    widths = {}
    for num_steps in (10, 50, 250):
        settings = dict(num_steps=num_steps, num_chains=8, leapfrog_steps=2)
        lower = annealed_importance_sampling(nonlinear_toy, x, **settings).log_likelihood() - truth
        upper = reverse_ais_log_likelihood(nonlinear_toy, x, z, **settings) - truth
        widths[num_steps] = (upper - lower).mean().item()
        print(f"\nT={num_steps}: forward − log p(x) = {lower.mean():+.3f}, reverse − log p(x) = {upper.mean():+.3f}, "
              f"width {widths[num_steps]:.3f} (log p(x) = {truth.mean():.3f} on average)")
        for error, sign in ((lower, 1.0), (upper, -1.0)):  # each bound holds up to 3 standard errors
            assert sign * error.mean().item() <= 3 * error.std().item() / math.sqrt(len(x))
    record_property("bdmc_widths", widths)
    assert widths[10] > widths[50] > widths[250] > 0
    assert widths[250] < 0.25


def test_ais_is_no_worse_than_importance_sampling_on_a_trained_mnist_model(trained_mnist_model) -> None:
    """On a β-VAE trained 300 steps on MNIST, AIS started from q(z|x) gives a log p(x) at least as high
    as importance sampling with q(z|x) and the same budget (both are stochastic lower bounds), up to
    the paired Monte-Carlo error."""
    model, x = trained_mnist_model
    settings = dict(num_steps=100, num_chains=8, leapfrog_steps=2, initial="posterior")
    ais = annealed_importance_sampling(model, x, **settings).log_likelihood()
    importance = importance_sampled_log_likelihood(model, x, _budget(100, 8, 2))
    difference = ais - importance
    error = difference.std().item() / math.sqrt(len(x))
    print(f"\nMNIST: AIS {ais.mean():.3f}, IS {importance.mean():.3f}, AIS − IS {difference.mean():+.3f} ± {error:.3f}")
    assert difference.mean().item() > -2 * error


def test_reverse_ais_needs_one_latent_per_x_and_settings_are_checked(nonlinear_toy) -> None:
    x, z = nonlinear_toy.simulate(4)
    with pytest.raises(ValueError, match="one latent per x"):
        reverse_ais_log_likelihood(nonlinear_toy, x, z[:3], num_steps=2)
    with pytest.raises(ValueError, match="initial='encoder' is not supported; choose one of: prior, posterior"):
        AISNLL(initial="encoder")
    with pytest.raises(ValueError, match="target_acceptance must be a number in"):
        AISNLL(target_acceptance=1.0)
    with pytest.raises(ValueError, match="num_chains must be an integer >= 1"):
        annealed_importance_sampling(nonlinear_toy, x, num_chains=0)


def test_the_settings_and_their_defaults_live_in_one_place() -> None:
    """The callback's ``ais_*`` options, ``AISNLL`` and the function default to ``AISSettings``'s fields."""
    import inspect

    from infoae_pl.evaluation import EvaluationCallback
    from infoae_pl.evaluation.ais import AIS_DEFAULTS, AISSettings

    options = inspect.signature(EvaluationCallback).parameters
    for name in ("num_steps", "num_chains", "leapfrog_steps", "initial", "target_acceptance"):
        assert options[f"ais_{name}"].default == getattr(AISSettings(), name)
    assert AISNLL().settings == AIS_DEFAULTS
    assert AISNLL(num_steps=7).settings == AISNLL(AISSettings(num_steps=7)).settings
    assert EvaluationCallback(nll_estimator="ais", ais_num_steps=7, chunk_size=64).ais_settings == \
        AISSettings(num_steps=7, chunk_size=64)
    with pytest.raises(ValueError, match=r"^chunk_size must be an integer >= 1"):
        EvaluationCallback(chunk_size=0)


def test_the_metric_averages_the_negative_log_likelihood_over_batches(nonlinear_toy) -> None:
    """``AISNLL`` over two batches is the mean of −log p(x) over all their examples; chunking over x
    (``chunk_size``) splits the work, not the estimate's target."""
    x, _ = nonlinear_toy.simulate(12)
    metric = AISNLL(num_steps=100, num_chains=4, leapfrog_steps=2, chunk_size=16)  # 4 x per chunk
    metric.update(nonlinear_toy, x[:5])
    metric.update(nonlinear_toy, x[5:])
    truth = -nonlinear_toy.quadrature_log_likelihood(x).mean().item()
    assert metric.compute().item() == pytest.approx(truth, abs=0.15)

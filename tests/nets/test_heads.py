import pytest
import torch
from torch import nn

from infoae_pl.nets import BernoulliMLP, GaussianMLP, mlp, rsample, standard_normal_prior


def test_gaussian_head_shapes_and_std_floor():
    head = GaussianMLP(3, 2, hidden_dim=8, std_transform="sigmoid", min_std=0.25)
    dist = head(torch.randn(5, 3))
    assert dist.batch_shape == (5,) and dist.event_shape == (2,)
    assert dist.log_prob(torch.zeros(5, 2)).shape == (5,)
    assert (dist.base_dist.scale >= 0.25).all() and (dist.base_dist.scale <= 1.25).all()


def test_bernoulli_head_scores_one_number_per_example():
    head = BernoulliMLP(2, 7, hidden_dim=8)
    dist = head(torch.randn(4, 3, 2))
    assert dist.batch_shape == (4, 3) and dist.event_shape == (7,)
    x = torch.randint(0, 2, (3, 7)).float()
    logits = dist.base_dist.logits
    manual = (x * logits - nn.functional.softplus(logits)).sum(-1)
    torch.testing.assert_close(dist.log_prob(x), manual)


def test_bad_choices_name_option_and_allowed_values():
    with pytest.raises(ValueError, match=r"activation='swish'.*tanh"):
        mlp(2, 2, activation="swish")
    with pytest.raises(ValueError, match=r"std_transform='abs'.*softplus, sigmoid, exp"):
        GaussianMLP(2, 2, std_transform="abs")
    with pytest.raises(ValueError, match="init"):
        mlp(2, 2, init="orthogonal")


def test_glorot_init_zero_biases_and_depth():
    net = mlp(1, 2, hidden_dim=200, num_hidden_layers=2, activation="leaky_relu", init="glorot_uniform")
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(200, 1), (200, 200), (2, 200)]
    assert all((m.bias == 0).all() for m in linears)
    bound = (6 / (200 + 200)) ** 0.5
    assert linears[1].weight.abs().max() <= bound


def test_rsample_is_reparameterised_and_matches_distribution():
    head = GaussianMLP(1, 1, hidden_dim=4)
    dist = head(torch.zeros(20_000, 1))
    z = rsample(dist)
    assert z.requires_grad
    torch.testing.assert_close(z.mean(), dist.base_dist.loc.mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(), dist.base_dist.scale.mean(), atol=0.05, rtol=0)


def test_standard_normal_prior():
    prior = standard_normal_prior(3, torch.zeros(1, dtype=torch.float64))
    assert prior.event_shape == (3,) and prior.sample().dtype == torch.float64

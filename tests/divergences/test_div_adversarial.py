"""Critic-based JS and KL estimates against closed forms, their generator gradients, the gradient penalty, and MLPCritic."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from infoae_pl.divergences import CRITIC_DIVERGENCES, GENERATOR_LOSSES, AdversarialDivergence
from infoae_pl.nets import MLPCritic

Sampler = Callable[[int], torch.Tensor]


def _normal(mean: float, std: float) -> Sampler:
    return lambda n: mean + std * torch.randn(n, 1)


def _trained(
    divergence: str, p: Sampler, q: Sampler, steps: int = 400, batch: int = 2048
) -> AdversarialDivergence:
    """An estimator whose small critic was trained on fresh samples each step; the last 100 steps at lr/10."""
    estimator = AdversarialDivergence(MLPCritic(1, 32, 2, activation="elu"), divergence, "minimax")
    optimiser = torch.optim.Adam(estimator.critic.parameters(), lr=1e-2)
    for step in range(steps):
        if step == steps - 100:
            for group in optimiser.param_groups:
                group["lr"] = 1e-3
        loss = estimator.critic_loss(p(batch), q(batch))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return estimator


def _gaussian_js(mean_p: float, mean_q: float) -> float:
    """JS(N(mean_p, 1) ‖ N(mean_q, 1)) in nats by trapezoidal quadrature on a fine grid."""
    x = torch.linspace(-15.0, 17.0, 400_001, dtype=torch.float64)
    p = torch.exp(-0.5 * (x - mean_p) ** 2) / math.sqrt(2 * math.pi)
    q = torch.exp(-0.5 * (x - mean_q) ** 2) / math.sqrt(2 * math.pi)
    m = 0.5 * (p + q)
    integrand = 0.5 * (torch.xlogy(p, p / m) + torch.xlogy(q, q / m))
    return torch.trapezoid(integrand, x).item()


@pytest.mark.parametrize(
    ("p", "q", "expected", "tolerance"),
    [
        ((0.0, 1.0), (1.0, 1.0), 0.5, 0.1),
        ((1.0, 1.0), (0.0, 1.0), 0.5, 0.1),
        ((0.0, 1.0), (0.0, 2.0), math.log(2) + 1 / 8 - 1 / 2, 0.15 * 0.318),  # KL(P ‖ Q)
        ((0.0, 2.0), (0.0, 1.0), -math.log(2) + 2 - 1 / 2, 0.15 * 0.807),  # KL(Q ‖ P): arguments swapped
    ],
)
def test_trained_kl_critic_estimates_the_gaussian_kl(
    p: tuple[float, float], q: tuple[float, float], expected: float, tolerance: float
) -> None:
    torch.manual_seed(0)
    estimator = _trained("kl", _normal(*p), _normal(*q))
    with torch.no_grad():
        value = estimator.estimate(_normal(*p)(20_000), _normal(*q)(20_000)).item()
    assert value == pytest.approx(expected, abs=tolerance)


def test_trained_js_critic_estimates_the_js_divergence_by_quadrature() -> None:
    torch.manual_seed(0)
    expected = _gaussian_js(0.0, 2.0)
    assert 0.3 < expected < math.log(2)
    estimator = _trained("js", _normal(0.0, 1.0), _normal(2.0, 1.0), steps=300)
    with torch.no_grad():
        value = estimator.estimate(_normal(0.0, 1.0)(20_000), _normal(2.0, 1.0)(20_000)).item()
    assert value == pytest.approx(expected, abs=0.05)


def test_js_estimate_never_exceeds_log_2() -> None:
    torch.manual_seed(0)
    for scale in (0.1, 1.0, 100.0):
        critic = MLPCritic(2, 16)
        with torch.no_grad():
            for parameter in critic.parameters():
                parameter.mul_(scale)
        estimator = AdversarialDivergence(critic, "js")
        assert estimator.estimate(torch.randn(50, 2), 3.0 + torch.randn(40, 2)).item() <= math.log(2) + 1e-6
    separating = AdversarialDivergence(MLPCritic(1, num_hidden_layers=0), "js")
    with torch.no_grad():
        separating.critic.head.weight.fill_(100.0)
        separating.critic.head.bias.zero_()
    value = separating.estimate(1.0 + torch.rand(30, 1), -1.0 - torch.rand(30, 1)).item()
    assert math.log(2) - 1e-6 < value <= math.log(2) + 1e-6


def test_critic_losses_and_minimax_estimates_follow_their_formulas() -> None:
    torch.manual_seed(0)
    critic = MLPCritic(3, 16)
    a, b = torch.randn(8, 3), torch.randn(6, 3) + 1.0
    t_a, t_b = critic(a), critic(b)
    js = AdversarialDivergence(critic, "js", "minimax")
    kl = AdversarialDivergence(critic, "kl", "minimax")
    torch.testing.assert_close(js.critic_loss(a, b), F.softplus(-t_a).mean() + F.softplus(t_b).mean())
    torch.testing.assert_close(js.estimate(a, b), math.log(2) - 0.5 * js.critic_loss(a, b))
    torch.testing.assert_close(kl.estimate(a, b), t_a.mean() - (t_b - 1).exp().mean())
    torch.testing.assert_close(kl.critic_loss(a, b), -kl.estimate(a, b))
    assert js.estimate(a, b).shape == () and kl.estimate(a, b).shape == ()


def test_non_saturating_keeps_the_value_and_takes_the_non_saturating_gradient() -> None:
    torch.manual_seed(0)
    critic = MLPCritic(3, 16)
    a = torch.randn(8, 3, requires_grad=True)
    b = (torch.randn(6, 3) + 1.0).requires_grad_(True)
    non_saturating = AdversarialDivergence(critic, "js", "non_saturating").estimate(a, b)
    minimax = AdversarialDivergence(critic, "js", "minimax").estimate(a, b)
    assert non_saturating.item() == minimax.item()

    t_a, t_b = critic(a), critic(b)
    value = math.log(2) - 0.5 * (F.softplus(-t_a).mean() + F.softplus(t_b).mean())
    goodfellow = 0.5 * (F.softplus(t_a).mean() + F.softplus(-t_b).mean())
    for estimate, reference in ((non_saturating, goodfellow), (minimax, value)):
        got = torch.autograd.grad(estimate, (a, b), retain_graph=True)
        want = torch.autograd.grad(reference, (a, b), retain_graph=True)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-8)
    # The two gradients really differ, so the check above tells them apart.
    grad_ns = torch.autograd.grad(non_saturating, b, retain_graph=True)[0]
    grad_mm = torch.autograd.grad(minimax, b)[0]
    assert not torch.allclose(grad_ns, grad_mm)


class _Quadratic(nn.Module):
    """T(u) = c·‖u‖² + w·u, a nonlinear per-example critic with a known gradient."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(0.7))
        self.w = nn.Parameter(torch.randn(dim))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.c * u.square().sum(-1) + u @ self.w


@pytest.mark.parametrize("divergence", CRITIC_DIVERGENCES)
def test_gradient_penalty_of_a_linear_critic_is_gamma_times_the_squared_weight_norm(divergence: str) -> None:
    torch.manual_seed(0)
    critic = MLPCritic(4, num_hidden_layers=0)  # T(u) = w·u + c, so ‖∇T‖² = ‖w‖² everywhere
    assert isinstance(critic.trunk, nn.Identity)
    a, b = torch.randn(10, 4), torch.randn(10, 4) + 2.0
    gamma = 0.3
    plain = AdversarialDivergence(critic, divergence, "minimax").critic_loss(a, b)
    penalised = AdversarialDivergence(critic, divergence, "minimax", gradient_penalty=gamma).critic_loss(a, b)
    weight = critic.head.weight
    torch.testing.assert_close(penalised - plain, gamma * weight.square().sum())
    # create_graph=True: the penalty trains the critic, d(γ‖w‖²)/dw = 2γw.
    (penalty_grad,) = torch.autograd.grad(penalised - plain, weight)
    torch.testing.assert_close(penalty_grad, 2 * gamma * weight.detach())


def test_gradient_penalty_at_random_interpolates_matches_an_independent_computation() -> None:
    torch.manual_seed(0)
    critic = _Quadratic(3)
    a, b = torch.randn(12, 3), torch.randn(12, 3) + 1.0
    gamma = 2.0
    plain = AdversarialDivergence(critic, "js", "minimax").critic_loss(a, b)
    torch.manual_seed(1)
    penalised = AdversarialDivergence(critic, "js", "minimax", gradient_penalty=gamma).critic_loss(a, b)
    torch.manual_seed(1)
    t = torch.rand(12, 1)
    u = t * a + (1 - t) * b
    per_example = vmap(grad(lambda v: critic(v)))(u)
    torch.testing.assert_close(per_example, 2 * critic.c.detach() * u + critic.w.detach())
    torch.testing.assert_close(penalised - plain, gamma * per_example.square().sum(-1).mean())


def test_gradient_penalty_needs_equal_sample_sizes_and_is_off_at_zero() -> None:
    critic = MLPCritic(2, 8)
    a, b = torch.randn(5, 2), torch.randn(7, 2)
    AdversarialDivergence(critic, gradient_penalty=0.0).critic_loss(a, b)  # no interpolation, no error
    with pytest.raises(ValueError, match=r"gradient_penalty > 0.*\(5, 2\) and \(7, 2\)"):
        AdversarialDivergence(critic, gradient_penalty=1.0).critic_loss(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"divergence": "wasserstein"}, "divergence='wasserstein'.*js, kl"),
        ({"generator_loss": "saturating"}, "generator_loss='saturating'.*non_saturating, minimax"),
        ({"gradient_penalty": -1.0}, "gradient_penalty must be >= 0"),
        ({"gradient_penalty": float("nan")}, "gradient_penalty must be a finite number"),
        ({"divergence": "kl"}, "generator_loss='non_saturating'.*divergence='js'.*minimax"),
    ],
)
def test_constructor_errors_name_the_option_and_the_allowed_values(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AdversarialDivergence(MLPCritic(2, 8), **kwargs)


def test_every_divergence_and_generator_loss_pairing_but_kl_non_saturating_constructs() -> None:
    for divergence in CRITIC_DIVERGENCES:
        for generator_loss in GENERATOR_LOSSES:
            if (divergence, generator_loss) != ("kl", "non_saturating"):
                AdversarialDivergence(MLPCritic(2, 8), divergence, generator_loss)


@pytest.mark.parametrize("num_hidden_layers", [0, 1, 3])
def test_mlp_critic_shapes_and_shared_trunk(num_hidden_layers: int) -> None:
    torch.manual_seed(0)
    critic = MLPCritic(3, hidden_dim=16, num_hidden_layers=num_hidden_layers, init="glorot_uniform")
    u = torch.randn(5, 7, 3)
    feature_dim = 16 if num_hidden_layers else 3
    assert critic.feature_dim == feature_dim
    assert critic.features(u).shape == (5, 7, feature_dim)
    assert critic(u).shape == (5, 7)
    torch.testing.assert_close(critic(u), critic.head(critic.features(u)).squeeze(-1))
    linears = [m for m in critic.trunk.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == num_hidden_layers
    if num_hidden_layers:
        assert isinstance(critic.trunk[-1], nn.LeakyReLU)  # the trunk ends with the activation
    assert critic.head.in_features == feature_dim and critic.head.out_features == 1
    assert (critic.head.bias == 0).all()  # the init reaches the head too
    torch.testing.assert_close(copy.deepcopy(critic)(u), critic(u))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_dim": 0}, "in_dim must be an integer >= 1"),
        ({"hidden_dim": 0}, "hidden_dim must be an integer >= 1"),
        ({"num_hidden_layers": -1}, "num_hidden_layers must be an integer >= 0"),
        ({"activation": "swish"}, "activation='swish'.*leaky_relu"),
        ({"init": "orthogonal"}, "init='orthogonal'.*glorot_uniform"),
    ],
)
def test_mlp_critic_errors_name_the_option(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPCritic(**{"in_dim": 2, **kwargs})

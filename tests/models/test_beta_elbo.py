import math

import lightning as L
import pytest
import torch

from infoae_pl.models import BetaELBO, NonFiniteLossError
from infoae_pl.nets import LatentVariableModel
from infoae_pl.objectives.config import ANALYTIC_KL

SMALL = dict(data_dim=2, latent_dim=2, likelihood="gaussian", hidden_dim=16)
RECON = "E_q[log p(x|z)]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": -0.1}, "beta must be >= 0"),
        ({"beta": float("nan")}, "beta must be a finite number"),
        ({"mi_bound": -1.0}, "mi_bound must be >= 0"),
        ({"kl_warmup_steps": -5}, "kl_warmup_steps"),
        ({"likelihood": "poisson"}, "likelihood='poisson'.*bernoulli, gaussian"),
        ({"lr": float("inf")}, "lr must be a finite number"),
        ({"betas": (0.9, 1.5)}, "betas"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BetaELBO(**{**SMALL, **kwargs})


def test_implements_probabilistic_interface():
    model = BetaELBO(**SMALL)
    assert isinstance(model, LatentVariableModel)
    assert model.prior().event_shape == (2,)


def test_terms_match_an_independent_computation():
    """recon = −log N(x; μ(z), σ(z)) at z = μ_q + σ_q ε, and the closed-form Gaussian KL."""
    model = BetaELBO(beta=0.3, **SMALL)
    x = torch.randn(64, 2)
    torch.manual_seed(7)
    terms = model.loss_terms(x)
    torch.manual_seed(7)
    q = model.encode(x)
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    z = mu + sigma * torch.randn_like(mu)
    px = model.decode(z).base_dist
    log_lik = (-0.5 * ((x - px.loc) / px.scale) ** 2 - px.scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    kl = 0.5 * (mu**2 + sigma**2 - 1 - 2 * sigma.log()).sum(-1)
    torch.testing.assert_close(terms["recon_nll"], -log_lik.mean())
    torch.testing.assert_close(terms["kl"], kl.mean())
    torch.testing.assert_close(terms["loss"], -log_lik.mean() + 0.3 * kl.mean())
    torch.testing.assert_close(terms["elbo"], (log_lik - kl).mean())


def test_warmup_then_beta_and_bound_clips_reconstruction():
    """The warm-up and the bound are the Lagrangian module's schedule and bound on compiled components."""
    model = BetaELBO(beta=0.2, kl_warmup_steps=100, kl_warmup_weight=0.01, mi_bound=3.0, **SMALL)
    assert model.coefficients(0) == {RECON: -1.0, ANALYTIC_KL: 0.01, "bound/" + RECON: 3.0}
    assert model.coefficients(99)[ANALYTIC_KL] == 0.01
    assert model.coefficients(100)[ANALYTIC_KL] == 0.2
    x = torch.randn(8, 2)
    terms = model.loss_terms(x, {RECON: -1.0, ANALYTIC_KL: 0.5, "bound/" + RECON: 0.0})
    # With a bound of 0 nats the reconstruction term is max(recon_nll, 0).
    expected = torch.clamp(terms["recon_nll"], min=0.0) + 0.5 * terms["kl"]
    torch.testing.assert_close(terms["loss"], expected)
    assert terms["kl_weight"] == 0.5
    unbounded = BetaELBO(beta=0.2, **SMALL)
    assert "bound/" + RECON not in unbounded.coefficients(0)
    with pytest.raises(ValueError, match="BetaELBO sets preset itself"):
        BetaELBO(preset="elbo", **SMALL)


def _fit(model, x, steps=60, seed=0):
    L.seed_everything(seed, verbose=False)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(len(x))), batch_size=50)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, loader)
    return trainer


def test_training_improves_elbo_and_is_deterministic():
    torch.manual_seed(1)
    x = torch.randn(500, 2) * torch.tensor([2.0, 0.5]) + 1.0
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = BetaELBO(lr=3e-3, **SMALL)
        before = model.loss_terms(x)["elbo"].item()
        _fit(model, x, steps=150)
        torch.manual_seed(4)
        runs.append(model.loss_terms(x)["elbo"].item())
    assert runs[0] == runs[1], "the same seed must give the same numbers"
    assert runs[0] > before + 1.0


def test_nan_loss_stops_the_run_with_a_message():
    model = BetaELBO(**SMALL)
    with torch.no_grad():
        model.decoder.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"training loss became nan at step 0 \(.*recon_nll=nan"):
        _fit(model, torch.randn(100, 2), steps=5)


def test_step_schedule_divides_the_learning_rate_at_each_milestone():
    model = BetaELBO(lr=1e-3, lr_milestones=(3, 5), lr_gamma=0.1, **SMALL)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(7):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3] * 3 + [1e-4] * 2 + [1e-5] * 2)
    with pytest.raises(ValueError, match="lr_milestones must be increasing"):
        BetaELBO(lr_milestones=(5, 3), **SMALL)


def test_adam_is_fused_on_cpu_and_matches_the_per_tensor_update():
    torch.manual_seed(0)
    fused_model = BetaELBO(**SMALL)
    loop_model = BetaELBO(**SMALL)
    loop_model.load_state_dict(fused_model.state_dict())
    fused = fused_model.configure_optimizers()
    assert fused.defaults["fused"] is True
    loop = torch.optim.Adam(loop_model.parameters(), lr=fused.defaults["lr"], betas=fused.defaults["betas"],
                            foreach=False)
    x = torch.randn(16, SMALL["data_dim"])
    for model, optimizer in ((fused_model, fused), (loop_model, loop)):
        for _ in range(3):
            torch.manual_seed(1)
            optimizer.zero_grad()
            model.loss_terms(x)["loss"].backward()
            optimizer.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

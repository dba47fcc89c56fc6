"""LagrangianModule: construction checks, each estimator against an independent truth, the loss
assembly, the β-ELBO preset's numbers, the example configs and stacked copies."""

import copy
import csv
import functools
import itertools
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch

from infoae_pl.cli import main
from infoae_pl.divergences import gaussian_kernel, mmd
from infoae_pl.models import BetaELBO, LagrangianModule
from infoae_pl.models.stacked import StackedModules
from infoae_pl.objectives import PRESETS
from infoae_pl.objectives.config import ANALYTIC_KL, loss_components

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = dict(data_dim=3, latent_dim=2, hidden_dim=8, num_hidden_layers=1)
INFOVAE = {"I_q": -0.5, "KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1.5}
VMI = {"I_p": -1, "KL(p(z|x)||q(z|x))": 1}
LOG2PI = math.log(2 * math.pi)

# Preset (default parameters) -> the terms compared with generated x (None: none), which a Bernoulli
# decoder's draws cannot train, so those presets need an implicit generator.
PRESET_OUTCOMES = {
    "elbo": None,
    "beta_elbo": None,
    "vmi": None,
    "infovae": None,
    "mmd_infovae": None,
    "aae": None,
    "infogan": "KL(p(x)||q(x))",
    "infobigan": "KL(p(x,z)||q(x,z))",
    "ali_bigan": "JS(q(x,z)||p(x,z))",
    "alice": "JS(q(x,z)||p(x,z))",
    "cyclegan": "JS(q(x)||p(x))",
}


def _binary(n, d, seed=0):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


def test_every_preset_builds_and_x_divergences_need_a_differentiable_generator():
    assert set(PRESET_OUTCOMES) == set(PRESETS), "a new preset needs an expected outcome here"
    for name, x_term in PRESET_OUTCOMES.items():
        options = {}
        if x_term is not None:
            with pytest.raises(ValueError, match=re.escape(x_term) + ".* carry no gradient to the generator: set "
                                                 "implicit_generator=True"):
                LagrangianModule(preset=name, **TINY)
            options = {"implicit_generator": True}
        torch.manual_seed(0)
        model = LagrangianModule(preset=name, **options, **TINY)
        terms = model.loss_terms(_binary(16, 3))
        assert set(terms) == {"loss", *model.tractable_form, *model.coefficients(0)}
        assert torch.isfinite(terms["loss"])
        terms["loss"].backward()


def test_infogan_without_marginal_terms_is_vmi():
    model = LagrangianModule(preset="infogan", preset_params={"lambda1": 0.0}, **TINY)
    assert model.tractable_form == {"E_p[log q(z|x)]": -1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give lagrangian .* or preset .*, or both"),
        ({"lagrangian": INFOVAE, "preset_params": {"beta": 2.0}}, "preset_params only applies to a preset"),
        ({"preset": "vae"}, "unknown preset 'vae'; valid presets: elbo, beta_elbo"),
        ({"preset": "beta_elbo", "preset_params": {"alpha": 1.0}}, "no parameter alpha; its parameters: beta"),
        ({"lagrangian": {"I_r": 1.0}}, "unknown term 'I_r'; valid terms: I_p, I_q"),
        ({"lagrangian": {}}, "compiles to a constant"),
        ({"lagrangian": {"E_q[KL(p(z|x)||q(z|x))]": 1.0}},
         r"cannot be trained: intractable: .*\(uncovered terms: E_q\[KL\(p\(z\|x\)\|\|q\(z\|x\)\)\]\)"),
        ({"preset": "aae", "z_divergence": "adversarial"}, "z_divergence='adversarial' .* choose one of: mmd, js, kl"),
        ({"preset": "aae", "x_divergence": "wasserstein"}, "x_divergence='wasserstein' .* choose one of: mmd, js, kl"),
        ({"preset": "aae", "mmd_kernel_bandwidth": 0.0}, "bandwidth"),
        ({"preset": "aae", "mmd_kernel": "laplace"}, "choose one of: gaussian, imq"),
        ({"preset": "aae", "critic_steps": 0}, "critic_steps must be an integer >= 1"),
        ({"preset": "aae", "z_divergence": "js", "generator_loss": "wgan"}, "generator_loss='wgan' .* non_saturating, minimax"),
    ],
)
def test_bad_objectives_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LagrangianModule(**kwargs, **TINY)


def test_a_preset_plus_extra_terms_is_their_sum():
    """Figure 2's InfoVAE: β-ELBO + λ·MMD(q(z)||p(z)), written as the preset and one extra term."""
    model = LagrangianModule(preset="beta_elbo", preset_params={"beta": 0.5},
                             lagrangian={"MMD(q(z)||p(z))": 100.0}, **TINY)
    assert model.tractable_form == {
        "E_q[log p(x|z)]": -1.0, "E_q[log q(z|x)]": 0.5, "E_q[log p(z)]": -0.5, "MMD(q(z)||p(z))": 100.0,
    }


def test_coefficients_are_the_compiled_form_with_the_analytic_kl_grouping():
    model = LagrangianModule(lagrangian=INFOVAE, **TINY)
    assert model.tractable_form == {
        "E_q[log p(x|z)]": -1.0, "E_q[log q(z|x)]": 0.5, "E_q[log p(z)]": -0.5, "KL(q(z)||p(z))": 1.0,
    }
    assert model.coefficients(0) == model.coefficients(10**6) == {
        "E_q[log p(x|z)]": -1.0, ANALYTIC_KL: 0.5, "KL(q(z)||p(z))": 1.0,
    }
    # Only an exactly opposite pair is grouped.
    assert loss_components({"E_q[log q(z|x)]": 1, "E_q[log p(z)]": -2}) == {"E_q[log q(z|x)]": 1.0, "E_q[log p(z)]": -2.0}
    assert loss_components({"E_q[log q(z|x)]": 1}) == {"E_q[log q(z|x)]": 1.0}


@pytest.mark.parametrize("lagrangian", [INFOVAE, {**INFOVAE, **VMI}, {"I_q": -1, "KL(q(x|z)||p(x|z))": 1,
                                                                    "MMD(p(z)||q(z))": 10, "JS(q(z)||p(z))": 2}])
def test_loss_is_the_coefficient_weighted_sum_of_the_returned_terms(lagrangian):
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=lagrangian, likelihood="bernoulli", **TINY)
    x = _binary(32, 3)
    terms = model.loss_terms(x)
    expected = torch.zeros(())
    for name, c in model.coefficients(0).items():
        expected = expected + c * terms[name]
    torch.testing.assert_close(terms["loss"], expected)
    overridden = model.loss_terms(x, {k: torch.tensor(2.0 * v) for k, v in model.coefficients(0).items()})
    assert torch.isfinite(overridden["loss"])


def test_eq_terms_match_a_direct_monte_carlo_computation():
    """One z = μ + σ·ε per x, Gaussian log-densities by hand, and the closed-form Gaussian KL."""
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=INFOVAE, likelihood="gaussian", **TINY)
    x = torch.randn(64, 3)
    names = ["E_q[log p(x|z)]", "E_q[log q(z|x)]", "E_q[log p(z)]", "E_q[log p(x,z)]", ANALYTIC_KL]
    torch.manual_seed(7)
    terms = model.estimate_terms(x, names)
    torch.manual_seed(7)
    q = model.encode(x).base_dist
    mu, sigma = q.loc, q.scale
    eps = torch.randn_like(mu)
    z = mu + sigma * eps
    px = model.decode(z).base_dist
    log_lik = (-0.5 * ((x - px.loc) / px.scale) ** 2 - px.scale.log() - 0.5 * LOG2PI).sum(-1)
    log_q = (-0.5 * eps**2 - sigma.log() - 0.5 * LOG2PI).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG2PI).sum(-1)
    torch.testing.assert_close(terms["E_q[log p(x|z)]"], log_lik.mean())
    torch.testing.assert_close(terms["E_q[log q(z|x)]"], log_q.mean())
    torch.testing.assert_close(terms["E_q[log p(z)]"], log_prior.mean())
    torch.testing.assert_close(terms["E_q[log p(x,z)]"], (log_lik + log_prior).mean())
    torch.testing.assert_close(terms[ANALYTIC_KL], (0.5 * (mu**2 + sigma**2 - 1) - sigma.log()).sum(-1).mean())


def test_analytic_kl_is_the_expectation_of_the_grouped_monte_carlo_pair():
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=INFOVAE, likelihood="gaussian", **TINY)
    x = torch.randn(4, 3).repeat(5000, 1)
    terms = model.estimate_terms(x, ["E_q[log q(z|x)]", "E_q[log p(z)]", ANALYTIC_KL])
    monte_carlo = terms["E_q[log q(z|x)]"] - terms["E_q[log p(z)]"]
    torch.testing.assert_close(monte_carlo, terms[ANALYTIC_KL], atol=0.03, rtol=0)


def test_ep_terms_of_a_gaussian_decoder_match_a_direct_computation():
    """z ~ N(0, I), x = μ(z) + σ(z)·ε (pathwise); E_p[log p(x|z)] is the analytic −entropy."""
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=VMI, likelihood="gaussian", **TINY)
    x = torch.zeros(64, 3)
    torch.manual_seed(3)
    terms = model.estimate_terms(x, ["E_p[log q(z|x)]", "E_p[log p(x|z)]", "E_p[log p(z)]", "E_p[log p(x,z)]"])
    torch.manual_seed(3)
    z = torch.randn(64, 2)
    px = model.decode(z).base_dist
    x_p = px.loc + px.scale * torch.randn_like(px.loc)
    q = model.encode(x_p).base_dist
    log_q = (-0.5 * ((z - q.loc) / q.scale) ** 2 - q.scale.log() - 0.5 * LOG2PI).sum(-1)
    neg_entropy = -(0.5 + 0.5 * LOG2PI + px.scale.log()).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG2PI).sum(-1)
    torch.testing.assert_close(terms["E_p[log q(z|x)]"], log_q.mean())
    torch.testing.assert_close(terms["E_p[log p(x|z)]"], neg_entropy.mean())
    torch.testing.assert_close(terms["E_p[log p(z)]"], log_prior.mean())
    torch.testing.assert_close(terms["E_p[log p(x,z)]"], (neg_entropy + log_prior).mean())
    # E_p[log p(z)] is the prior's −entropy, −d/2·(1 + log 2π), up to Monte-Carlo error.
    torch.manual_seed(4)
    constant = model.estimate_terms(torch.zeros(20000, 3), ["E_p[log p(z)]"])["E_p[log p(z)]"]
    assert constant.item() == pytest.approx(-(1 + LOG2PI), abs=0.03)


def test_bernoulli_analytic_ep_log_likelihood_matches_a_large_monte_carlo():
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=VMI, likelihood="bernoulli", **TINY)
    torch.manual_seed(5)
    analytic = model.estimate_terms(torch.zeros(8, 3), ["E_p[log p(x|z)]"])["E_p[log p(x|z)]"]
    torch.manual_seed(5)
    p_x = model.decode(torch.randn(8, 2))
    samples = torch.bernoulli(p_x.base_dist.probs.detach().expand(20000, 8, 3))
    monte_carlo = p_x.log_prob(samples).mean()
    torch.testing.assert_close(analytic, monte_carlo, atol=0.02, rtol=0)


def test_score_function_gradient_matches_the_exact_gradient_by_enumeration():
    """data_dim=3 Bernoulli: E_p[log q(z|x)] over the 8 binary x exactly, for the same z ~ p(z)."""
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian=VMI, likelihood="bernoulli", data_dim=3, latent_dim=1, hidden_dim=4,
                             num_hidden_layers=1)
    with torch.no_grad():  # a sharper encoder, so that the decoder's gradient is large
        for p in model.encoder.parameters():
            p.mul_(2.0)
    decoder, encoder = list(model.decoder.parameters()), list(model.encoder.parameters())
    n = 50000
    torch.manual_seed(1)
    estimate = model.estimate_terms(torch.zeros(n, 3), ["E_p[log q(z|x)]"])["E_p[log q(z|x)]"]
    estimated = torch.autograd.grad(estimate, decoder + encoder)
    torch.manual_seed(1)
    z = torch.randn(n, 1)
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    weights = model.decode(z.unsqueeze(1)).log_prob(xs).exp()  # p(x_k|z_j), [n, 8]
    exact = (weights * model.encode(xs).log_prob(z.unsqueeze(1))).sum(-1).mean()
    truth = torch.autograd.grad(exact, decoder + encoder)

    def relative_error(a, b):
        a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
        return ((a - b).norm() / b.norm()).item()

    k = len(decoder)
    assert torch.cat([t.flatten() for t in truth[:k]]).norm() > 1.0
    assert relative_error(estimated[:k], truth[:k]) < 0.05, "score-function gradient (decoder)"
    assert relative_error(estimated[k:], truth[k:]) < 0.02, "pathwise gradient (encoder)"
    assert estimate.item() == pytest.approx(exact.item(), rel=0.01)


def test_z_marginal_divergences_are_the_mmd_of_the_same_samples():
    torch.manual_seed(0)
    model = LagrangianModule(lagrangian={"I_q": -1, "KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1,
                                         "KL(p(z)||q(z))": 2}, mmd_kernel_bandwidth=0.7, likelihood="gaussian", **TINY)
    x = torch.randn(32, 3)
    torch.manual_seed(2)
    terms = model.loss_terms(x)
    torch.manual_seed(2)
    q = model.encode(x).base_dist
    z_q = q.loc + q.scale * torch.randn_like(q.loc)
    z_p = torch.randn(32, 2)
    expected = mmd(z_q, z_p, functools.partial(gaussian_kernel, bandwidth=0.7))
    torch.testing.assert_close(terms["KL(q(z)||p(z))"], expected, rtol=0, atol=0)
    torch.testing.assert_close(terms["KL(p(z)||q(z))"], expected, rtol=0, atol=0)


BETA_ELBO_CASES = {
    "gaussian": dict(beta=0.5, data_dim=3, latent_dim=2, likelihood="gaussian", hidden_dim=8),
    "bernoulli, warm-up and bound": dict(beta=2.0, kl_warmup_steps=2, kl_warmup_weight=0.1, mi_bound=1.5, data_dim=5,
                                         latent_dim=2, likelihood="bernoulli", hidden_dim=8),
}


def _hand_written_beta_elbo_loss(model, x, step, beta, kl_warmup_steps=0, kl_warmup_weight=0.01, mi_bound=None):
    """The β-VAE loss written out by hand: max(−E_q[log p(x|z)], −mi_bound) + w·KL, w the warm-up weight, then β."""
    q = model.encode(x)
    z = q.base_dist.loc + q.base_dist.scale * torch.randn_like(q.base_dist.loc)
    recon_nll = -model.decode(z).log_prob(x).mean()
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    kl = (0.5 * (mu**2 + sigma**2 - 1) - sigma.log()).sum(-1).mean()
    weight = kl_warmup_weight if step < kl_warmup_steps else beta
    bounded = recon_nll if mi_bound is None else torch.clamp(recon_nll, min=-mi_bound)
    return bounded + weight * kl


@pytest.mark.parametrize("case", list(BETA_ELBO_CASES))
def test_beta_elbo_preset_trains_the_hand_written_beta_elbo(case):
    """The preset with its schedule and bound gives, step by step, the loss written out by hand on the
    same draws, and the same parameters after four Adam steps (float tolerance, not recorded numbers)."""
    kwargs = BETA_ELBO_CASES[case]
    torch.manual_seed(0)
    model = BetaELBO(**kwargs)
    reference = copy.deepcopy(model)
    x = torch.rand(32, kwargs["data_dim"])
    if kwargs["likelihood"] == "bernoulli":
        x = (x > 0.5).float()
    options = {k: v for k, v in kwargs.items() if k in ("beta", "kl_warmup_steps", "kl_warmup_weight", "mi_bound")}
    optimizers = [model.configure_optimizers(), torch.optim.Adam(reference.parameters(), lr=1e-3)]
    for step in range(4):
        torch.manual_seed(100 + step)
        terms = model.loss_terms(x, model.coefficients(step))
        torch.manual_seed(100 + step)
        expected = _hand_written_beta_elbo_loss(reference, x, step, **options)
        torch.testing.assert_close(terms["loss"], expected, rtol=1e-5, atol=1e-6)
        assert terms["E_q[log p(x|z)]"].item() == -terms["recon_nll"].item()
        for optimizer, loss in zip(optimizers, (terms["loss"], expected)):
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert model.tractable_form == {"E_q[log p(x|z)]": -1.0, "E_q[log q(z|x)]": kwargs["beta"],
                                    "E_q[log p(z)]": -kwargs["beta"]}


def _logged(run_dir):
    with (run_dir / "metrics.csv").open() as f:
        return {k for row in csv.DictReader(f) for k, v in row.items() if v}


FAST = ["--trainer.max_steps", "5", "--model.init_args.hidden_dim", "16", "--trainer.enable_progress_bar", "false",
        "--trainer.log_every_n_steps", "1"]


def test_mog1d_config_trains_and_logs_every_term(tmp_path):
    main(["fit", "--config", str(CONFIGS / "lagrangian_mog1d.yaml"), *FAST, "--trainer.val_check_interval", "5",
          "--trainer.callbacks.init_args.quadrature_grid_size", "501", "--data.val_size", "200",
          "--data.test_size", "200", "--trainer.logger.init_args.save_dir", str(tmp_path)])
    logged = _logged(tmp_path / "infoae" / "version_0")
    assert {"train/loss", "train/E_q[log p(x|z)]", "train/E_q[log q(z|x)]", "train/E_q[log p(z)]",
            f"train/{ANALYTIC_KL}", "train/KL(q(z)||p(z))", "val/nll"} <= logged


def test_mnist5k_config_trains_and_logs_every_term(tmp_path):
    main(["fit", "--config", str(CONFIGS / "lagrangian_mnist5k.yaml"), *FAST, "--trainer.val_check_interval", "3",
          "--trainer.limit_val_batches", "1", "--trainer.callbacks.init_args.importance_samples", "8",
          "--model.init_args.latent_dim", "8", "--trainer.logger.init_args.save_dir", str(tmp_path)])
    logged = _logged(tmp_path / "infoae" / "version_0")
    assert {"train/loss", "train/E_q[log p(x|z)]", "train/MMD(p(z)||q(z))", "val/nll"} <= logged


def test_stacked_copies_with_different_coefficients_train():
    shared = dict(likelihood="bernoulli", data_dim=3, latent_dim=2, hidden_dim=8, lr=1e-2)
    copies = [{"lagrangian": {**INFOVAE, **VMI}}, {"lagrangian": {**INFOVAE, **VMI, "KL(q(z)||p(z))": 4.0, "I_p": -2,
                                                   "KL(p(z|x)||q(z|x))": 2}}]
    stacked = StackedModules("infoae_pl.models.LagrangianModule", shared, copies, names=["a", "b"])
    c = stacked.coefficients(0)
    assert c["KL(q(z)||p(z))"].tolist() == [1.0, 3.5] and c["E_p[log q(z|x)]"].tolist() == [-1.0, -2.0]
    x = _binary(64, 3)
    terms = stacked.loss_terms(x)
    assert all(v.shape == (2,) for v in terms.values())
    assert set(terms) == {"loss", *stacked.unstack()[0].loss_terms(x)}
    L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(stacked, torch.utils.data.DataLoader(
                  torch.utils.data.TensorDataset(x, torch.zeros(64)), batch_size=32))
    assert torch.isfinite(stacked.last_terms["loss"]).all()

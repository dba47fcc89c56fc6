"""The likelihood-free family modules: each loss is its compiled Lagrangian term by term, the critic
terms are the critics' estimates on the same samples, short CPU runs move samples toward the data,
InfoGAN recovers its code, and the adversarial schedule counts generator steps."""

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml

from infoae_pl.cli import main
from infoae_pl.data import InfoAEDataModule
from infoae_pl.divergences import mmd
from infoae_pl.models import CycleGAN, InfoBiGAN, InfoGAN, InfoVAE, LagrangianModule, NonFiniteLossError
from infoae_pl.models.stacked import StackedModules

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RING = dict(data_dim=2, likelihood="gaussian", hidden_dim=64, num_hidden_layers=2, activation="relu",
            lr=1e-3, betas=(0.5, 0.999), critic_hidden_dim=64, critic_lr=1e-3)

# Family -> (constructor, its compiled tractable form, written out by hand from section 2.5).
FAMILIES = {
    "infovae": (lambda: InfoVAE(beta=0.5, lam=100.0, latent_dim=2, **RING),
                {"E_q[log p(x|z)]": -1.0, "E_q[log q(z|x)]": 0.5, "E_q[log p(z)]": -0.5, "D(q(z)||p(z))": 100.0}),
    "aae": (lambda: InfoVAE(beta=0.0, lam=1.0, z_divergence="js", latent_dim=2, **RING),
            {"E_q[log p(x|z)]": -1.0, "D(q(z)||p(z))": 1.0}),
    "infogan": (lambda: InfoGAN(noise_dim=2, num_categories=8, num_continuous=0, **RING),
                {"E_p[log q(z|x)]": -1.0, "JS(p(x)||q(x))": 1.0}),
    "ali_bigan": (lambda: InfoBiGAN(latent_dim=2, **RING), {"JS(q(x,z)||p(x,z))": 1.0}),
    "alice": (lambda: InfoBiGAN(preset="alice", latent_dim=2, **RING),
              {"E_q[log p(x|z)]": -1.0, "JS(q(x,z)||p(x,z))": 1.0}),
    "cyclegan": (lambda: CycleGAN(latent_dim=2, **RING),
                 {"E_q[log p(x|z)]": -1.0, "E_p[log q(z|x)]": -1.0, "JS(q(x)||p(x))": 1.0, "JS(q(z)||p(z))": 1.0}),
}


def _ring(n, seed=1):
    datamodule = InfoAEDataModule(dataset="ring8")
    return datamodule.mixture.sample(n, torch.Generator().manual_seed(seed))[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_is_the_compiled_lagrangian_term_by_term(family):
    build, expected_form = FAMILIES[family]
    torch.manual_seed(0)
    model = build()
    assert model.tractable_form == pytest.approx(expected_form)
    terms = model.loss_terms(_ring(64))
    components = model.coefficients(0)
    assert set(terms) == {"loss", *expected_form, *components}
    total = sum(coefficient * terms[name] for name, coefficient in components.items())
    torch.testing.assert_close(terms["loss"], total)
    assert torch.isfinite(terms["loss"])


def _js(critic, a, b):
    return math.log(2.0) - 0.5 * (F.softplus(-critic(a)).mean() + F.softplus(critic(b)).mean())


def test_alice_terms_equal_an_independent_computation_on_the_same_draws():
    """Reconstruction −E_q[log p(x|z)] and the joint JS at the current critic, recomputed by hand."""
    torch.manual_seed(0)
    model = FAMILIES["alice"][0]()
    x = _ring(32)
    torch.manual_seed(5)
    terms = model.loss_terms(x)
    torch.manual_seed(5)
    q_z = model.encode(x).base_dist
    z_q = q_z.loc + q_z.scale * torch.randn_like(q_z.loc)
    z_p = torch.randn(32, 2)
    x_p = model.decode(z_p).mean
    critic = model.critics["JS_q_x_z_p_x_z"].critic
    with torch.no_grad():
        reconstruction = model.decode(z_q).log_prob(x).mean()
        js = _js(critic, torch.cat([x, z_q], -1), torch.cat([x_p, z_p], -1))
    torch.testing.assert_close(terms["E_q[log p(x|z)]"].detach(), reconstruction)
    torch.testing.assert_close(terms["JS(q(x,z)||p(x,z))"].detach(), js)


def test_cyclegan_terms_equal_an_independent_computation_on_the_same_draws():
    """Both cycles and both marginal critics, recomputed by hand from the same random draws."""
    torch.manual_seed(0)
    model = FAMILIES["cyclegan"][0]()
    x = _ring(32)
    torch.manual_seed(7)
    terms = model.loss_terms(x)
    torch.manual_seed(7)
    q_z = model.encode(x).base_dist
    z_q = q_z.loc + q_z.scale * torch.randn_like(q_z.loc)
    z_p = torch.randn(32, 2)
    x_p = model.decode(z_p).mean
    with torch.no_grad():
        expected = {
            "E_q[log p(x|z)]": model.decode(z_q).log_prob(x).mean(),
            "E_p[log q(z|x)]": model.encode(x_p).log_prob(z_p).mean(),
            "JS(q(x)||p(x))": _js(model.critics["JS_q_x_p_x"].critic, x, x_p),
            "JS(q(z)||p(z))": _js(model.critics["JS_q_z_p_z"].critic, z_q, z_p),
        }
    for name, value in expected.items():
        torch.testing.assert_close(terms[name].detach(), value, msg=name)


def _generated_mmd(model, data, seed=3):
    torch.manual_seed(seed)
    with torch.no_grad():
        return mmd(model.sample_x(model.prior().sample(torch.Size([len(data)]))), data).item()


def _fit(model, steps, seed=0):
    L.seed_everything(seed)
    datamodule = InfoAEDataModule(dataset="ring8", batch_size=128, steps_per_epoch=steps, seed=seed)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule)
    return trainer


@pytest.mark.parametrize("family", FAMILIES)
def test_a_short_cpu_run_moves_samples_toward_the_data(family):
    torch.manual_seed(0)
    model = FAMILIES[family][0]()
    data = _ring(1000, seed=11)
    before = _generated_mmd(model, data)
    trainer = _fit(model, steps=600)
    after = _generated_mmd(model, data)
    assert trainer.global_step == 600
    assert after < 0.25 * before, f"{family}: MMD to the data {before:.4f} -> {after:.4f}"


def test_infogan_recovers_its_categorical_code_well_above_chance():
    torch.manual_seed(0)
    model = FAMILIES["infogan"][0]()
    _fit(model, steps=600)
    torch.manual_seed(1)
    with torch.no_grad():
        z = model.prior().sample(torch.Size([2000]))
        predicted = model.encode(model.sample_x(z)).logits.argmax(-1)
    accuracy = (predicted == model.prior().split(z)[1].argmax(-1)).float().mean().item()
    assert accuracy > 0.5, f"code accuracy {accuracy:.3f} (chance 0.125)"


def test_critic_steps_do_not_count_as_global_steps_and_all_optimisers_move():
    torch.manual_seed(0)
    model = InfoBiGAN(latent_dim=2, critic_steps=3, lr_milestones=[5], **RING)
    critic_before = [p.detach().clone() for p in model.critics.parameters()]
    generator_before = [p.detach().clone() for p in model.decoder.parameters()]
    trainer = _fit(model, steps=10)
    assert trainer.global_step == 10
    assert all(not torch.equal(a, b) for a, b in zip(critic_before, model.critics.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(generator_before, model.decoder.parameters()))
    model_optimizer, critic_optimizer = model.optimizers()
    assert critic_optimizer.optimizer.state[next(model.critics.parameters())]["step"] == 30
    assert model_optimizer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # the schedule stepped at 5


def test_infogan_q_head_shares_the_discriminator_trunk():
    model = FAMILIES["infogan"][0]()
    trunk = model.critics["JS_p_x_q_x"].critic.trunk
    assert model.encoder.trunk is trunk
    critic_ids = {id(p) for p in model.critics.parameters()}
    model_optimizer, _ = model.configure_optimizers()
    model_ids = {id(p) for group in model_optimizer["optimizer"].param_groups for p in group["params"]}
    assert critic_ids.isdisjoint(model_ids)
    assert {id(p) for p in model.encoder.head.parameters()} <= model_ids


@pytest.mark.parametrize("q_trains_trunk", [False, True])
def test_the_mi_term_trains_the_shared_trunk_in_the_critic_step_only_when_asked(q_trains_trunk):
    torch.manual_seed(0)
    model = InfoGAN(noise_dim=2, num_categories=8, num_continuous=1, q_trains_trunk=q_trains_trunk, **RING)
    trunk = list(model.critics["JS_p_x_q_x"].critic.trunk.parameters())
    x = _ring(64)
    state = torch.get_rng_state()
    with_mi = torch.autograd.grad(model.critic_loss(x), trunk)
    torch.set_rng_state(state)
    plain = torch.autograd.grad(LagrangianModule.critic_loss(model, x), trunk)
    same = all(torch.equal(a, b) for a, b in zip(with_mi, plain))
    assert same != q_trains_trunk


def test_q_in_the_critic_optimiser_trains_its_head_in_the_critic_step_only():
    torch.manual_seed(0)
    model = InfoGAN(noise_dim=2, num_categories=8, num_continuous=1, q_trains_trunk=True, q_optimizer="critic", **RING)
    head = {id(p) for p in model.encoder.head.parameters()}
    model_optimizer, critic_optimizer = model.configure_optimizers()
    ids = [{id(p) for group in opt["optimizer"].param_groups for p in group["params"]} for opt in (model_optimizer, critic_optimizer)]
    assert head <= ids[1] and head.isdisjoint(ids[0])
    assert critic_optimizer["optimizer"].param_groups[0]["lr"] == RING["critic_lr"]
    before = [p.detach().clone() for p in model.encoder.head.parameters()]
    _fit(model, steps=3)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.encoder.head.parameters()))
    assert model.optimizers()[1].optimizer.state[next(model.encoder.head.parameters())]["step"] == 3


def test_a_uniform_code_prior_draws_noise_and_continuous_codes_in_the_unit_box_grid_included():
    model = InfoGAN(noise_dim=4, num_categories=3, num_continuous=2, code_prior="uniform", **RING)
    noise, _, continuous = model.prior().split(model.prior().sample(torch.Size([500])))
    assert noise.abs().max() <= 1.0 and continuous.abs().max() <= 1.0 and continuous.abs().max() > 0.9
    grid_noise = model.prior().split(model.latent_grid(4)[0])[0]
    assert grid_noise.abs().max() <= 1.0


def test_infogan_q_head_layout_and_a_fixed_continuous_std():
    model = InfoGAN(noise_dim=2, num_categories=8, num_continuous=2, continuous_std=2.0, q_hidden_dim=16, **RING)
    layers = [type(layer).__name__ for layer in model.encoder.head.modules()]
    assert layers[-4:] == ["Linear", "BatchNorm1d", "LeakyReLU", "Linear"]
    q = model.encode(_ring(5).expand(3, 5, 2))  # leading dimensions pass through the head's batch norm
    assert q.continuous.loc.shape == (3, 5, 2) and torch.equal(q.continuous.scale, torch.full((3, 5, 2), 2.0))
    # log q of a continuous code is then a squared error scaled by 1/(2σ²) (plus constants)
    u = torch.randn(3, 5, 2)
    expected = -(u - q.continuous.loc).square() / 8.0 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    z = torch.cat([torch.zeros(3, 5, 2), F.one_hot(torch.zeros(3, 5, dtype=torch.long), 8).float(), u], -1)
    noise_and_code = torch.distributions.Normal(0.0, 1.0).log_prob(torch.zeros(2)).sum() + q.logits.log_softmax(-1)[..., 0]
    torch.testing.assert_close(q.log_prob(z), noise_and_code + expected.sum(-1))
    learned = InfoGAN(noise_dim=2, num_categories=8, num_continuous=2, q_hidden_dim=0, continuous_std=None, **RING)
    assert isinstance(learned.encoder.head, torch.nn.Linear) and learned.encoder.head.out_features == 8 + 2 + 2
    assert learned.encode(_ring(5)).continuous.scale.min() > 0


def test_infogan_code_grid_sweeps_each_continuous_code_with_the_noise_fixed():
    model = InfoGAN(noise_dim=2, num_categories=3, num_continuous=2, **RING)
    z, labels = model.latent_grid(10)
    noise, code, continuous = model.prior().split(z)
    assert labels == ["c = 0", "c = 1", "c = 2"] and z.shape == (30, 7)
    assert torch.equal(noise, noise[:1].expand_as(noise))
    assert torch.equal(code.reshape(3, 10, 3).argmax(-1), torch.arange(3)[:, None].expand(3, 10))
    grid = continuous.reshape(3, 10, 2)
    sweep = torch.linspace(-2.0, 2.0, 5).expand(3, 5)
    torch.testing.assert_close(grid[:, :5, 0], sweep)
    torch.testing.assert_close(grid[:, 5:, 1], sweep)
    assert not grid[:, :5, 1].any() and not grid[:, 5:, 0].any()


@pytest.mark.parametrize("family", FAMILIES)
def test_hyperparameters_rebuild_the_module(family):
    model = FAMILIES[family][0]()
    rebuilt = type(model)(**model.hparams)
    assert rebuilt.tractable_form == model.tractable_form
    assert rebuilt.critic_keys == model.critic_keys


def test_a_non_finite_loss_in_adversarial_training_stops_with_the_terms_named():
    torch.manual_seed(0)
    model = InfoBiGAN(latent_dim=2, **RING)
    with torch.no_grad():
        next(model.decoder.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"critic_loss=nan"):
        _fit(model, steps=2)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: InfoBiGAN(preset="elbo", latent_dim=2, **RING), "preset='elbo' is not supported; choose one of: ali_bigan"),
        (lambda: InfoGAN(num_categories=1, **RING), "num_categories must be 0 or an integer >= 2"),
        (lambda: InfoGAN(num_categories=0, num_continuous=0, **RING), "InfoGAN needs a code"),
        (lambda: InfoGAN(x_divergence="mmd", **RING), "x_divergence='mmd' .* choose one of: js, kl"),
        (lambda: InfoGAN(latent_dim=3, **RING), "InfoGAN sets latent_dim itself"),
        (lambda: InfoGAN(continuous_std=0.0, **RING), r"continuous_std must be > 0 or null"),
        (lambda: InfoGAN(q_hidden_dim=-1, **RING), r"q_hidden_dim must be an integer >= 0"),
        (lambda: InfoGAN(q_optimizer="discriminator", **RING), r"q_optimizer='discriminator' .* choose one of: generator, critic"),
        (lambda: InfoGAN(q_optimizer="critic", **RING), r"q_optimizer='critic' .* set q_trains_trunk: true"),
        (lambda: InfoGAN(code_prior="gauss", **RING), r"code_prior='gauss' .* choose one of: normal, uniform"),
        (lambda: InfoVAE(lam=-1.0, **RING), "lam must be >= 0"),
        (lambda: LagrangianModule(preset="cyclegan", data_dim=4, latent_dim=2), "set implicit_generator=True"),
    ],
)
def test_bad_family_options_fail_before_training(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_stacked_copies_refuse_critics():
    with pytest.raises(ValueError, match="train critics by alternation"):
        StackedModules("infoae_pl.models.InfoBiGAN", shared=dict(latent_dim=2, **RING), copies=[{}, {}])


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*_ring8.yaml")))
def test_every_ring8_example_config_trains_through_infoae_fit(config, tmp_path):
    main(["fit", "--config", str(CONFIGS / config), "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path)])
    metrics = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {"val/mmd_x", "val/modes_hit", "val/high_quality_fraction"} <= set(metrics)


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*_mnist5k.yaml") if "elbo" not in p.name
                                          and "lagrangian" not in p.name and "_conv_" not in p.name))  # conv: test_conv_families
def test_every_mnist5k_family_config_trains_through_infoae_fit(config, tmp_path, tmp_path_factory):
    settings = yaml.safe_load((CONFIGS / config).read_text())
    (callback,) = settings["trainer"]["callbacks"]
    family_config = not config.startswith("fig2_")  # Figure 2's model has no generator to score
    assert (callback["init_args"].get("classifier") == "auto") == family_config  # sample quality as the conv configs'
    classifiers = tmp_path_factory.getbasetemp() / "mlp-config-classifiers"  # trained once for the session
    callback["init_args"].update(classifier_dir=str(classifiers), fit_examples=64,
                                 classifier_settings={"steps": 10, "channels": 4, "hidden_dim": 16, "batch_size": 32})
    (tmp_path / config).write_text(yaml.safe_dump(settings))
    main(["fit", "--config", str(tmp_path / config), "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "1", "--trainer.default_root_dir", str(tmp_path)])
    metrics = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {"val/mmd_x", *(["val/fid", "val/kid", "val/class_coverage"] if family_config else [])} <= set(metrics)

"""Learned Lagrange multipliers: the loss at the current λ, the projected ascent step, a known answer
(a binding budget ends active, a loose one drives λ to 0), checkpoints, refusals, and a study over ε."""

import csv
from fractions import Fraction

import lightning as L
import pytest
import torch
import yaml

from infoae_pl.data import InfoAEDataModule
from infoae_pl.models import InfoVAE, LagrangianModule
from infoae_pl.models.stacked import StackedModules
from infoae_pl.objectives import compile
from infoae_pl.objectives.config import ANALYTIC_KL, loss_components
from infoae_pl.tuning.spec import load_study
from infoae_pl.tuning.sweep import run_sweep

MOG = dict(data_dim=1, latent_dim=1, likelihood="gaussian", hidden_dim=64, activation="leaky_relu", lr=1e-3)
# min I_q subject to −ELBO ≤ ε: unconstrained, the posterior collapses to the best single Gaussian
# fit of the mixture, whose −ELBO is ½·log(2πe·1.25) = 1.5305 nats (H(x) = 1.3585).
COLLAPSED_NEG_ELBO = 1.5305


def _compress(epsilon, **options):
    return LagrangianModule(lagrangian={"I_q": 1.0},
                            constraints={"neg_elbo": {"preset": "elbo", "epsilon": epsilon, "initial": 1.0}},
                            **{**MOG, **options})


def _fit(model, steps):
    L.seed_everything(0)
    datamodule = InfoAEDataModule(dataset="mog1d", batch_size=500, steps_per_epoch=steps)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule)
    return trainer


def test_coefficients_are_the_compiled_lagrangian_at_the_current_multipliers():
    model = _compress(1.5)
    for value in (1.0, 0.0, 2.75):
        model.multipliers.lambdas.fill_(value)
        compiled = compile(model.plan.dual.lagrangian({"neg_elbo": Fraction(value).limit_denominator()}))
        expected = loss_components(compiled.tractable_form)
        got = {k: v for k, v in model.coefficients(0).items() if v}
        assert got.keys() == expected.keys() and all(got[k] == pytest.approx(expected[k]) for k in got)


def test_loss_terms_report_constraint_slack_and_lambda():
    torch.manual_seed(0)
    model = _compress(1.5)
    terms = model.loss_terms(torch.randn(64, 1))
    neg_elbo = -terms["E_q[log p(x|z)]"] + terms[ANALYTIC_KL]
    torch.testing.assert_close(terms["constraint/neg_elbo"], neg_elbo.detach())
    torch.testing.assert_close(terms["slack/neg_elbo"], 1.5 - neg_elbo.detach())
    assert terms["lambda/neg_elbo"].item() == 1.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_update_is_a_projected_ascent_step(optimizer):
    model = _compress(1.5, multiplier_lr=0.5, multiplier_optimizer=optimizer, multiplier_max=1.2)
    model.update_multipliers({"constraint/neg_elbo": torch.tensor(1.9)})  # violated by 0.4
    # SGD: 1 + 0.5·0.4 = 1.2; Adam's first step has size lr: 1 + 0.5, projected onto multiplier_max = 1.2.
    assert model.multipliers.lambdas.item() == pytest.approx(1.2)
    model.update_multipliers({"constraint/neg_elbo": torch.tensor(-100.0)})  # far inside the budget
    if optimizer == "sgd":
        assert model.multipliers.lambdas.item() == 0.0  # 1.2 − 0.5·101.5, projected onto λ ≥ 0
    else:
        assert 0.0 <= model.multipliers.lambdas.item() < 1.2


def test_a_binding_budget_ends_active_and_a_loose_one_drives_lambda_to_zero():
    torch.manual_seed(0)
    tight = _compress(1.48, multiplier_optimizer="adam", multiplier_lr=0.1)
    _fit(tight, 3000)
    (row,) = tight.multipliers.table()
    assert row["lambda"] > 0.5 and abs(row["slack"]) < 0.03, row  # below the collapsed 1.5305: it must bind
    assert row["status"] == "active"

    torch.manual_seed(0)
    loose = _compress(3.0, multiplier_optimizer="adam", multiplier_lr=0.1)
    _fit(loose, 400)
    (row,) = loose.multipliers.table()
    assert row["lambda"] == 0.0 and row["slack"] > 1.0 and row["status"] == "slack", row
    assert row["value"] == pytest.approx(COLLAPSED_NEG_ELBO, abs=0.08)


def test_multipliers_and_their_optimiser_survive_a_checkpoint(tmp_path):
    model = _compress(1.5, multiplier_optimizer="adam", multiplier_lr=0.1)
    trainer = _fit(model, 5)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    restored = LagrangianModule.load_from_checkpoint(tmp_path / "last.ckpt")
    assert restored.multipliers.lambdas.item() == pytest.approx(model.multipliers.lambdas.item())
    # The multipliers' optimiser is part of the module's state (their component's extra state).
    state = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]["multipliers._extra_state"]["optimizer"]
    assert state["state"][0]["step"] == 5
    assert restored.multipliers.optimizer().state_dict()["state"][0]["step"] == 5


def test_family_modules_accept_constraints():
    """InfoVAE with learned λ: β-ELBO plus λ_mmd·(MMD − ε) instead of a fixed λ."""
    model = InfoVAE(beta=1.0, lam=0.0, constraints={"mmd": {"lagrangian": {"MMD(q(z)||p(z))": 1}, "epsilon": 1e-3}},
                    **MOG)
    assert model.coefficients(0)["MMD(q(z)||p(z))"] == 1.0
    assert "constraint/mmd" in model.loss_terms(torch.randn(32, 1))


@pytest.mark.parametrize(
    ("constraints", "options", "message"),
    [
        ({"c": {"preset": "elbo"}}, {}, r"constraints.c.epsilon .* is required"),
        ({"c": {"preset": "elbo", "epsilon": 1, "budget": 2}}, {}, "unknown key.* budget; allowed: lagrangian"),
        ({"c": {"preset": "elbo", "epsilon": 1}}, {"multiplier_optimizer": "lbfgs"}, "choose one of: sgd, adam"),
        ({"c": {"preset": "elbo", "epsilon": 1, "initial": 5}}, {"multiplier_max": 2}, "exceeds multiplier_max"),
        ({"c": {"preset": "elbo", "epsilon": 1, "initial": -1}}, {}, r"constraints.c.initial must be >= 0"),
    ],
)
def test_bad_constraints_fail_before_training(constraints, options, message):
    with pytest.raises(ValueError, match=message):
        LagrangianModule(lagrangian={"I_q": 1.0}, constraints=constraints, **MOG, **options)


def test_stacked_copies_refuse_learned_multipliers():
    shared = dict(lagrangian={"I_q": 1.0}, constraints={"c": {"preset": "elbo", "epsilon": 1.5}}, **MOG)
    with pytest.raises(ValueError, match="learned multipliers"):
        StackedModules("infoae_pl.models.LagrangianModule", shared=shared, copies=[{}, {}])


def test_budgets_are_searched_in_an_optuna_study(tmp_path):
    base = {
        "seed_everything": 0,
        "model": {"class_path": "infoae_pl.models.LagrangianModule", "init_args": {
            "lagrangian": {"I_q": 1.0}, "constraints": {"neg_elbo": {"preset": "elbo", "epsilon": 2.0}},
            "multiplier_optimizer": "adam", "multiplier_lr": 0.1, **{k: v for k, v in MOG.items() if k != "data_dim"}}},
        "data": {"dataset": "mog1d", "batch_size": 100, "steps_per_epoch": 10, "val_size": 200, "test_size": 200},
        "trainer": {"max_steps": 20, "log_every_n_steps": 5},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    study = {
        "study_name": "budgets", "base_config": "base.yaml",
        "search_space": {"model.init_args.constraints.neg_elbo.epsilon": {"type": "grid", "values": [1.4, 3.0]}},
        "objectives": [{"metric": "train/lambda/neg_elbo", "direction": "minimize"}],
        "sampler": "grid", "output_dir": str(tmp_path / "out"),
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    result = run_sweep(load_study(tmp_path / "study.yaml"), report=False)
    by_budget = {t.params["model.init_args.constraints.neg_elbo.epsilon"]: t.value for t in result.trials}
    assert by_budget[1.4] > by_budget[3.0]  # the tighter budget needs the larger multiplier
    for trial in result.trials:
        with (tmp_path / "out" / f"trial-{trial.number:04d}" / "metrics.csv").open() as f:
            logged = [r for r in csv.DictReader(f) if r.get("train/slack/neg_elbo")]
        assert logged and all("train/constraint/neg_elbo" in r for r in logged)

"""Before the first trial: objective metrics the trials never log, or never reach, stop the study."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import lightning as L
import pytest
from optuna.trial import TrialState

from conftest import BASE_CONFIG
from infoae_pl.cli import main
from infoae_pl.tuning import load_study, run_sweep
from infoae_pl.tuning.preflight import Schedule, check_objectives
from infoae_pl.tuning.trial import build_cli

SWEEPS = Path(__file__).resolve().parents[2] / "src" / "infoae_pl" / "sweeps"


class ValidationBatches(L.Callback):
    """Records after how many training batches each validation (not the sanity check) ran."""

    def __init__(self) -> None:
        self.batches, self.at = 0, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.at.append(self.batches)


def tiny_trial_config(**trainer) -> dict:
    config = copy.deepcopy(BASE_CONFIG)
    config["trainer"].pop("callbacks")
    config["trainer"].update({"enable_progress_bar": False, "enable_model_summary": False,
                              "enable_checkpointing": False, **trainer})
    return config


@pytest.mark.parametrize("trainer", [
    {"max_steps": 12},
    {"max_steps": 12, "val_check_interval": 2},
    {"max_steps": 10, "val_check_interval": 3, "check_val_every_n_epoch": None},
    {"max_steps": 10, "check_val_every_n_epoch": 3},
    {"max_steps": 16, "check_val_every_n_epoch": 3},
    {"max_steps": 12, "val_check_interval": 0.5},
    {"max_steps": -1, "max_epochs": 2},
    {"max_steps": 7, "limit_train_batches": 3},
    {"max_steps": 4, "accumulate_grad_batches": 2},
    {"max_steps": 10, "limit_val_batches": 0},
], ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()))
def test_the_predicted_validations_are_those_lightning_runs(trainer):
    """Epochs of 5 batches; the trial's trainer (with its closing validation) is the judge."""
    counter = ValidationBatches()
    cli = build_cli(tiny_trial_config(**trainer), callbacks=[counter])
    schedule = Schedule.of(cli)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert schedule.validations(100) == counter.at
    assert (schedule.validation_problem(1) is None) == bool(counter.at)


def test_an_interval_lightning_refuses_is_refused_with_its_reason():
    cli = build_cli(tiny_trial_config(max_steps=10, val_check_interval=20))
    problem = Schedule.of(cli).validation_problem(1)
    with pytest.raises(ValueError, match="must be less than or equal to the number of the training batches"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert "trainer.val_check_interval=20 exceeds the 5 batches of an epoch" in problem


def _no_study_was_created(path: Path) -> bool:
    return not (path.parent / "sweeps").exists()


def test_a_study_whose_trials_never_validate_is_refused_before_any_trial(write_study, capsys):
    # Epochs of 5 batches, validation every 3rd epoch, training stops after 2: val/nll would never exist.
    path = write_study(config={"trainer.check_val_every_n_epoch": 3})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infoae sweep: objectives[0].metric 'val/nll' is logged at validation, but a trial's "
                          "first validation would come after 15 batches")
    assert "trials end after 10 batches (trainer.max_steps=10)" in err
    assert _no_study_was_created(path)


def test_a_study_whose_trials_never_validate_at_all_says_so(write_study, capsys):
    assert main(["sweep", str(write_study(config={"trainer.limit_val_batches": 0}))]) == 2
    assert capsys.readouterr().err == ("infoae sweep: objectives[0].metric 'val/nll' is logged at validation, but "
                                       "validation is off (trainer.limit_val_batches=0)\n")


def test_validation_thinned_by_the_evaluation_callback_is_counted(write_study, capsys):
    config = copy.deepcopy(BASE_CONFIG)
    config["trainer"]["callbacks"][0]["init_args"]["every_n_validations"] = 3  # validations at 5 and 10: too few
    assert main(["sweep", str(write_study(base=config))]) == 2
    assert "a trial's validation 3 (EvaluationCallback every_n_validations=3) would come after 15 batches" \
        in capsys.readouterr().err
    # val/loss is the model's own: logged at every validation, so it is accepted.
    check_objectives(load_study(write_study(base=config, objectives=[{"metric": "val/loss", "direction": "minimize"}])))


@pytest.mark.parametrize(("metric", "suggestion"), [("val/nlll", "val/nll"), ("test/mi", "test/mi_ba"),
                                                    ("train/klx", "train/kl")])
def test_a_misspelt_objective_is_refused_with_what_is_logged_and_the_closest_name(write_study, capsys, metric,
                                                                                    suggestion):
    path = write_study(objectives=[{"metric": metric, "direction": "minimize"}])
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    stage = metric.split("/")[0]
    assert err.startswith(f"infoae sweep: objectives[0].metric {metric!r} is never logged by BetaELBO with the "
                          f"config's callbacks (it logs: {stage}/")
    assert err.rstrip().endswith(f"; did you mean {suggestion!r}?")
    assert f"{stage}/kl, " in err and f"{stage}/loss" in err
    assert _no_study_was_created(path)


def test_trials_shorter_than_the_validation_interval_still_end_with_their_objective(write_study):
    """The issue's copied study: 10 steps against a validation every 20 (a closing validation saves it)."""
    path = write_study(n_trials=1, config={"trainer.val_check_interval": 20, "trainer.check_val_every_n_epoch": None})
    (trial,) = run_sweep(load_study(path), report=False).trials
    assert trial.state == TrialState.COMPLETE
    with (load_study(path).output_dir / "trial-0000" / "metrics.csv").open() as f:
        logged = [(int(r["step"]), float(r["val/nll"])) for r in csv.DictReader(f) if r.get("val/nll")]
    assert logged[-1][0] == 9 and trial.values == [pytest.approx(logged[-1][1])]  # validated at the last step


def test_stacked_trials_have_no_closing_validation_so_their_cadence_must_reach(write_study, capsys):
    short = {"trainer.val_check_interval": 20, "trainer.check_val_every_n_epoch": None}
    assert main(["sweep", str(write_study(config=short)), "--batch-trials", "2"]) == 2
    assert "a trial's first validation would come after 20 batches" in capsys.readouterr().err


def test_a_sweep_with_no_completed_trial_exits_1_and_says_why(write_study, capsys):
    # β = 1e39 overflows float32: the trial's first loss is infinite.
    path = write_study(search_space={"model.init_args.beta": {"type": "grid", "values": [1e39]}}, sampler="grid",
                       n_trials=None)
    assert main(["sweep", str(path), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "infoae sweep: no trial of study 'tiny' completed (1 fail)" in err
    assert "  1 × NonFiniteLossError: training loss became" in err
    assert "--retry-failed" in err


@pytest.mark.parametrize("name", ["beta_elbo_beta", "pareto_nll_mi", "infovae_lambda_beta"])
def test_the_shipped_studies_pass_the_check(name):
    check_objectives(load_study(SWEEPS / f"{name}.yaml"))

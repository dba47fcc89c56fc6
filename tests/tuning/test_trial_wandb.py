"""A sweep trial's W&B run (name, group, tags, job type, nested config, best/final summary) and the trial's
user attributes that lead to its files, read back from the offline run files and the study."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from optuna.trial import TrialState
from wandb_records import run_record, run_summary

from infoae_pl.tuning import load_study, open_study, run_sweep


def _logged(trial_dir: Path, column: str) -> list[float]:
    with (trial_dir / "metrics.csv").open() as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


def test_a_trials_run_is_named_and_grouped_by_study_holds_its_objectives_and_is_named_by_the_trial(write_study):
    spec = load_study(write_study(objectives=[{"metric": "val/nll", "direction": "minimize"},
                                              {"metric": "test/nll", "direction": "minimize"}], n_trials=1))
    (trial,) = run_sweep(spec, report=False).trials
    assert trial.state == TrialState.COMPLETE
    trial_dir = spec.output_dir / "trial-0000"
    (wandb_run,) = (trial_dir / "wandb").glob("offline-run-*")

    record = run_record(wandb_run)
    assert (record.display_name, record.run_group, record.job_type) == ("tiny-trial-0000", "tiny", "trial")
    assert list(record.tags) == ["BetaELBO", "mog1d"]
    config = {item.key: json.loads(item.value_json) for item in record.config.update}
    beta = trial.params["model.init_args.beta"]
    assert config["model"]["class_path"] == "infoae_pl.models.BetaELBO"
    assert config["model"]["init_args"]["beta"] == pytest.approx(beta) and config["trainer"]["max_steps"] == 10
    assert config["optuna"] == {"study": "tiny", "trial": 0, "params": {"model.init_args.beta": pytest.approx(beta)}}

    summary = run_summary(wandb_run)
    validations = _logged(trial_dir, "val/nll")
    assert len(validations) == 2  # steps 5 and 10
    assert summary["final/val/nll"] == pytest.approx(validations[-1]) == pytest.approx(trial.values[0])
    assert summary["best/val/nll"] == pytest.approx(min(validations))
    assert summary["final/test/nll"] == pytest.approx(_logged(trial_dir, "test/nll")[-1]) == pytest.approx(trial.values[1])
    assert "best/test/nll" not in summary  # one test: a final value only

    assert trial.user_attrs["run_dir"] == str(trial_dir.resolve())
    assert trial.user_attrs["wandb_run_id"] == record.run_id
    assert trial.user_attrs["wandb_run_dir"] == str(wandb_run.resolve())
    assert "wandb_run_path" not in trial.user_attrs  # offline: no entity/project/id on the server yet


def test_a_retry_that_starts_afresh_starts_a_new_wandb_run(write_study):
    """A dead worker's trial is retried with its attributes (its W&B run id among them) but no checkpoint:
    its training starts from step 0, so its W&B run is new."""
    spec = load_study(write_study(n_trials=1))
    open_study(spec, create=True).enqueue_trial({"model.init_args.beta": 1.0}, user_attrs={"wandb_run_id": "earlier0"})
    (trial,) = run_sweep(spec, report=False).trials
    (wandb_run,) = (spec.output_dir / "trial-0000" / "wandb").glob("offline-run-*")
    assert trial.state == TrialState.COMPLETE and not wandb_run.name.endswith("earlier0")
    assert trial.user_attrs["wandb_run_id"] == run_record(wandb_run).run_id != "earlier0"

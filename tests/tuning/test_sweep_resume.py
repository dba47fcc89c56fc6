"""Resuming a study: its fixed settings must be those it was created with; failed trials re-run on request."""

from __future__ import annotations

import copy

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from conftest import BASE_CONFIG
from infoae_pl.cli import main
from infoae_pl.tuning import load_study, open_study
from infoae_pl.tuning.asktell import counted, sample


def test_a_changed_study_file_stops_before_any_trial_and_says_how_to_go_on(write_study, capsys):
    path = write_study(n_trials=1)
    assert main(["sweep", str(path), "--no-report"]) == 0
    (first,) = open_study(load_study(path)).trials
    path = write_study(n_trials=2, config={"trainer.max_steps": 15})  # the same file, another trainer.max_steps
    capsys.readouterr()

    assert main(["sweep", str(path), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infoae sweep: study 'tiny' in ")
    assert "was created with other fixed settings (config.trainer.max_steps: 10 → 15), and its 1 trial(s) ran" in err
    assert "change study_name" in err and "add --allow-changed-study" in err
    assert len(open_study(load_study(path)).trials) == 1  # nothing ran

    assert main(["sweep", str(path), "--no-report", "--allow-changed-study"]) == 0
    study = open_study(load_study(path))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    fingerprints = [t.user_attrs["fingerprint"] for t in sorted(study.trials, key=lambda t: t.number)]
    assert fingerprints == [first.user_attrs["fingerprint"], load_study(path).fingerprint]
    assert fingerprints[0] != fingerprints[1]
    assert main(["sweep", str(path), "--create-only"]) == 0  # the new settings are now the study's


@pytest.mark.parametrize(("change", "refused"), [
    ({"n_trials": 5}, None),  # the budget, sampler and workers are not fixed settings
    ({"sampler": {"name": "random", "seed": 1}}, None),
    ({"base_lr": 0.01}, "config.model.init_args.lr: 0.003 → 0.01"),  # the base config's content
    ({"search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 9.0, "log": True}}},
     "search_space.model.init_args.beta.attributes.high: 5.0 → 9.0"),
    ({"objectives": [{"metric": "val/elbo", "direction": "minimize"}]},
     'objectives: [["val/nll", "minimize"]] → [["val/elbo", "minimize"]]'),
])
def test_what_counts_as_a_changed_study(write_study, capsys, change, refused):
    assert main(["sweep", str(write_study()), "--create-only"]) == 0
    base = copy.deepcopy(BASE_CONFIG)
    base["model"]["init_args"]["lr"] = change.pop("base_lr", base["model"]["init_args"]["lr"])
    assert main(["sweep", str(write_study(base=base, **change)), "--create-only"]) == (2 if refused else 0)
    if refused:
        assert refused in capsys.readouterr().err


def test_a_study_created_before_fingerprints_adopts_the_current_settings(write_study):
    path = write_study()
    spec = load_study(path)
    spec.output_dir.mkdir(parents=True)
    optuna.create_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(spec.output_dir / "study.journal"))))
    assert main(["sweep", str(path), "--create-only"]) == 0
    assert open_study(spec).user_attrs["fingerprint"] == spec.fingerprint


def test_retry_failed_runs_each_failed_trial_again_with_its_parameters(write_study, capsys):
    path = write_study(n_trials=1)
    spec = load_study(path)
    assert main(["sweep", str(path), "--create-only"]) == 0
    study = open_study(spec)
    failed = study.ask()
    beta = sample(spec, failed)["model.init_args.beta"]
    failed.set_user_attr("fail_reason", "RuntimeError: a cause since fixed")
    study.tell(failed, state=TrialState.FAIL)

    assert main(["sweep", str(path), "--no-report"]) == 1  # the failed trial used the budget: nothing ran
    assert "  1 × RuntimeError: a cause since fixed" in capsys.readouterr().err
    assert main(["sweep", str(path), "--no-report", "--retry-failed"]) == 0
    assert "trial 0 (RuntimeError: a cause since fixed) runs again (--retry-failed)" in capsys.readouterr().out
    trials = sorted(open_study(spec).trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == {"model.init_args.beta": beta} and trials[1].user_attrs["retry_of"] == 0
    assert counted(trials) == [trials[1]]  # the budget of one trial is exact
    assert main(["sweep", str(path), "--no-report", "--retry-failed"]) == 0  # nothing failed is left
    assert len(open_study(spec).trials) == 2

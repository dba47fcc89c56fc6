"""`infoae sweep` on the command line: errors before any trial, cluster set-up, help."""

from __future__ import annotations

import pytest

from infoae_pl.cli import main
from infoae_pl.tuning import load_study, open_study


def test_a_bad_study_exits_2_with_the_key_before_any_trial(write_study, capsys):
    path = write_study(pruner="asha")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infoae sweep: pruner.name='asha' is not supported; choose one of: median, hyperband, none")
    assert not (path.parent / "sweeps" / "tiny").exists(), "nothing may be created before the study is valid"


def test_workers_must_be_positive(write_study, capsys):
    assert main(["sweep", str(write_study()), "--workers", "0"]) == 2
    assert "--workers must be an integer >= 1, got 0" in capsys.readouterr().err


def test_create_only_makes_an_empty_study_for_a_cluster(write_study, capsys):
    path = write_study()
    assert main(["sweep", str(path), "--create-only"]) == 0
    study = open_study(load_study(path))
    assert study.trials == [] and study.metric_names == ["val/nll"]
    assert main(["sweep", str(path), "--create-only"]) == 0  # idempotent


def test_sweep_help_shows_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    assert "--workers" in out and "infoae sweep report" in out and "resumes the study" in out


def test_a_missing_study_file_is_named(capsys):
    assert main(["sweep", "nowhere.yaml"]) == 2
    assert "study file 'nowhere.yaml' does not exist" in capsys.readouterr().err


def test_report_on_a_study_that_never_ran_exits_2(write_study, capsys):
    assert main(["sweep", "report", str(write_study())]) == 2
    assert "no study 'tiny' in" in capsys.readouterr().err

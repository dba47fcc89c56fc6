"""A database storage fails a silent worker's trial with its reason, and its retry keeps the budget exact."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from infoae_pl._compat import heartbeat
from infoae_pl.tuning import load_study, open_study, run_sweep
from infoae_pl.tuning.asktell import claim, counts_toward_budget, trials_to_run


def _silent_trial(write_study, tmp_path, max_retry: int):
    """A trial of a SQLite study that beat once, then fell silent past the grace period, checked by Optuna."""
    spec = load_study(write_study(storage=f"sqlite:///{tmp_path / 'study.db'}",
                                  heartbeat={"interval": 1, "grace_period": 2, "max_retry": max_retry}))
    study = open_study(spec, create=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        trial = study.ask()
        claim(spec, study, trial)  # records this process as its worker, as a sweep does
        with heartbeat(study, trial):
            pass
        time.sleep(3)
        optuna.storages.fail_stale_trials(study)
    return spec, study


def test_a_stale_trial_says_which_worker_stopped_and_only_its_retry_uses_the_budget(write_study, tmp_path):
    spec, study = _silent_trial(write_study, tmp_path, max_retry=1)
    failed, retry = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == (f"no heartbeat for over 2 s (heartbeat.grace_period): worker pid "
                                                f"{os.getpid()} on {socket.gethostname()} stopped; it runs again")
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    assert retry.system_attrs["failed_trial"] == failed.number
    assert "fail_reason" not in retry.user_attrs and "retried" not in retry.user_attrs  # it starts clean
    assert not counts_toward_budget(failed) and trials_to_run(spec, study) == 2  # the retry + one new trial


def test_a_stale_trial_past_its_retries_fails_with_its_reason_and_uses_the_budget(write_study, tmp_path):
    spec, study = _silent_trial(write_study, tmp_path, max_retry=0)
    (failed,) = study.get_trials()
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"].endswith("stopped; not retried: heartbeat.max_retry=0 reached")
    assert counts_toward_budget(failed) and trials_to_run(spec, study) == 1


@pytest.mark.postgres
def test_postgresql_records_why_the_trial_of_a_killed_worker_failed(write_study, postgres_url, unique_name):
    path = write_study(name=unique_name("pg_reason"), n_trials=1, config={"trainer.max_steps": 30},
                       heartbeat={"interval": 1, "grace_period": 3, "max_retry": 2})
    spec = load_study(path, storage=postgres_url)
    worker = subprocess.Popen([sys.executable, "-m", "infoae_pl.cli", "sweep", str(path), "--storage", postgres_url,
                               "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                trials = open_study(spec).get_trials()
            except (KeyError, ValueError, optuna.exceptions.StorageInternalError):
                continue  # the study is not created yet
            # A trial whose folder exists is training, its heartbeat already beating.
            if any(t.state == TrialState.RUNNING and (spec.output_dir / f"trial-{t.number:04d}").exists()
                   for t in trials):
                break
        else:
            pytest.fail("the sweep never started a trial")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        worker.kill()
    time.sleep(4)  # past the grace period
    study = run_sweep(spec, report=False)
    trials = study.get_trials()
    (stale,) = [t for t in trials if t.state == TrialState.FAIL]
    assert stale.user_attrs["fail_reason"] == (f"no heartbeat for over 3 s (heartbeat.grace_period): worker pid "
                                               f"{worker.pid} on {socket.gethostname()} stopped; it runs again")
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == stale.number]
    assert retry.state == TrialState.COMPLETE and retry.params == stale.params
    assert [t.state.name for t in trials if counts_toward_budget(t)] == ["COMPLETE"]  # the budget stays exact

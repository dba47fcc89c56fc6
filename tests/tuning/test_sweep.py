"""Studies end to end on real storages: budgets, resumption, failures, workers, W&B runs, reports."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from wandb_records import run_record

from infoae_pl.cli import main
from infoae_pl.tuning import load_study, open_study, run_sweep
from infoae_pl.tuning.asktell import counts_toward_budget
from infoae_pl.tuning.storage import redact
from infoae_pl.tuning.trial import TrialMetricError, objective_values


def states(study: optuna.Study) -> list[str]:
    """The states of the trials that use the budget (a surplus trial of a race between workers does not)."""
    return [t.state.name for t in sorted(study.get_trials(), key=lambda t: t.number) if counts_toward_budget(t)]


def test_a_study_runs_its_budget_logs_each_trial_and_resumes_without_repeating(write_study, capsys):
    path = write_study(n_trials=2)
    study = run_sweep(load_study(path))
    assert states(study) == ["COMPLETE", "COMPLETE"]
    spec = load_study(path)
    for trial in study.trials:
        run_dir = spec.output_dir / f"trial-{trial.number:04d}"
        with (run_dir / "metrics.csv").open() as f:
            logged = [float(r["val/nll"]) for r in csv.DictReader(f) if r.get("val/nll")]
        assert trial.values == [pytest.approx(logged[-1])]  # the objective is the last logged val/nll
        assert (run_dir / "config.yaml").is_file() and list((run_dir / "checkpoints").glob("*.ckpt"))
        (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
        record = run_record(wandb_run)
        assert record.run_group == "tiny" and record.display_name == f"tiny-trial-{trial.number:04d}"
        config = {item.key: item.value_json for item in record.config.update}
        assert f'"model.init_args.beta":{trial.params["model.init_args.beta"]}' in config["optuna"].replace(" ", "")
    out = capsys.readouterr().out
    assert "[sweep tiny] trial 0 COMPLETE" in out and "[sweep tiny] trial 1 COMPLETE" in out
    before = {t.number: t.values for t in study.trials}

    again = run_sweep(load_study(path))  # the same command again: nothing new, nothing lost
    assert {t.number: t.values for t in again.trials} == before
    more = run_sweep(load_study(path, n_trials=3))  # a larger budget runs only the difference
    assert states(more) == ["COMPLETE"] * 3
    assert {t.number: t.values for t in more.trials if t.number < 2} == before


def test_a_nan_trial_fails_with_its_reason_and_the_study_goes_on(write_study):
    path = write_study(
        # β = 1e39 overflows float32: the first loss is infinite.
        search_space={"model.init_args.beta": {"type": "grid", "values": [1e39, 1.0]}}, sampler="grid", n_trials=None,
    )
    study = run_sweep(load_study(path))
    failed, complete = sorted(study.trials, key=lambda t: t.params["model.init_args.beta"], reverse=True)
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"].startswith("NonFiniteLossError: training loss became")
    assert complete.state == TrialState.COMPLETE
    # The failed trial used its share of the budget: re-running does not retry it.
    assert len(run_sweep(load_study(path)).trials) == 2


def test_a_metric_missing_at_the_end_of_a_trial_fails_it_listing_what_was_logged(write_study):
    """The trial's own check, behind the check before the study (tests/tuning/test_preflight.py)."""
    spec = load_study(write_study(objectives=[{"metric": "val/nlll", "direction": "minimize"}]))
    with pytest.raises(TrialMetricError, match=r"objective metric 'val/nlll' was never logged; logged: train/loss, val/nll$"):
        objective_values(spec, {"val/nll": 1.0, "train/loss": 2.0})


def test_pruning_reports_each_validation_epoch(write_study):
    base_steps = {"config": {"trainer.max_steps": 15}}
    study = run_sweep(load_study(write_study(pruner={"name": "median", "n_startup_trials": 1}, **base_steps)))
    for trial in study.trials:
        if trial.state == TrialState.COMPLETE:
            assert sorted(trial.intermediate_values) == [0, 1, 2]  # three epochs of five steps
            assert trial.intermediate_values[2] == pytest.approx(trial.values[0])
        else:
            assert trial.state == TrialState.PRUNED


def test_two_objectives_give_a_pareto_front_and_its_report(write_study):
    path = write_study(
        objectives=[{"metric": "val/nll", "direction": "minimize"}, {"metric": "val/mi_ba", "direction": "maximize"}],
        sampler={"name": "nsga2", "seed": 0}, n_trials=3,
    )
    study = run_sweep(load_study(path))
    assert states(study) == ["COMPLETE"] * 3
    report = load_study(path).output_dir / "report"
    assert (report / "pareto_front.png").stat().st_size > 0
    with (report / "best_trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {int(r["trial"]) for r in rows} == {t.number for t in study.best_trials}


def test_report_command_writes_figures_and_the_best_trials_without_wandb(write_study, capsys):
    path = write_study(n_trials=3)
    study = run_sweep(load_study(path), report=False)
    assert main(["sweep", "report", str(path)]) == 0
    report = load_study(path).output_dir / "report"
    for name in ("optimization_history.png", "optimization_history.pdf", "slice.png", "slice.pdf", "report.html"):
        assert (report / name).stat().st_size > 0, name
    assert not (report / "param_importances.png").exists(), "one searched parameter: no importances"
    with (report / "best_trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val/nll"]) for r in rows] == sorted(t.value for t in study.trials)
    assert f"trial-{study.best_trial.number:04d}" in rows[0]["run_dir"]
    assert "tiny" in (report / "report.html").read_text()


def test_the_summary_run_joins_the_trials_group(write_study):
    path = write_study(n_trials=2)
    run_sweep(load_study(path))
    (summary,) = (load_study(path).output_dir / "wandb").glob("offline-run-*")
    record = run_record(summary)
    assert (record.run_group, record.job_type, record.display_name) == ("tiny", "summary", "tiny-summary")
    assert list((summary / "files" / "media" / "images").rglob("*.png"))


def test_two_worker_processes_share_a_journal_without_duplicates(write_study):
    path = write_study(
        search_space={"model.init_args.beta": {"type": "grid", "values": [0.2, 0.5, 1.0, 2.0]}}, sampler="grid",
        n_trials=None,
    )
    study = run_sweep(load_study(path), workers=2, report=False)
    assert states(study) == ["COMPLETE"] * 4
    assert sorted(t.params["model.init_args.beta"] for t in study.trials) == [0.2, 0.5, 1.0, 2.0]
    assert len(study.trials) == 4  # enqueued grid points: no surplus either


def test_two_worker_processes_sample_distinct_trials_on_a_journal(write_study):
    study = run_sweep(load_study(write_study(n_trials=4)), workers=2, report=False)
    assert states(study) == ["COMPLETE"] * 4
    counted = [t for t in study.trials if counts_toward_budget(t)]
    assert len({t.params["model.init_args.beta"] for t in counted}) == 4  # each worker has its own seed


def test_val_and_test_objectives_together(write_study):
    path = write_study(n_trials=1, objectives=[{"metric": "val/nll", "direction": "minimize"},
                                               {"metric": "test/nll", "direction": "minimize"}])
    (trial,) = run_sweep(load_study(path), report=False).trials
    assert trial.state == TrialState.COMPLETE
    with (load_study(path).output_dir / "trial-0000" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert trial.values == [pytest.approx(float([r for r in rows if r.get("val/nll")][-1]["val/nll"])),
                            pytest.approx(float([r for r in rows if r.get("test/nll")][-1]["test/nll"]))]


def _start_sweep(path, *extra):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "infoae_pl.cli", "sweep", str(path), "--no-report", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_mid_trial(path, storage=None):
    """Start a one-worker sweep, SIGKILL it while a trial runs after one completed; return the
    completed trials' values."""
    process = _start_sweep(path, *(["--storage", storage] if storage else []))
    spec = load_study(path, storage=storage)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                trials = open_study(spec).get_trials()
            except (KeyError, ValueError, optuna.exceptions.StorageInternalError):
                continue  # the study is not created yet
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            if done and any(t.state == TrialState.RUNNING for t in trials):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return {t.number: t.values for t in done}
        pytest.fail("the sweep never reached a running trial after a completed one")
    finally:
        process.kill()


def test_a_worker_killed_mid_trial_loses_nothing_and_rerunning_finishes(write_study):
    path = write_study(n_trials=3, config={"trainer.max_steps": 30})
    completed = _kill_mid_trial(path)
    study = run_sweep(load_study(path), report=False)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and lost[0].user_attrs["fail_reason"].endswith("died")
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == lost[0].number)
    assert retry.params == lost[0].params and retry.state == TrialState.COMPLETE
    assert {n: t.values for n, t in ((t.number, t) for t in trials) if n in completed} == completed


@pytest.mark.usefixtures("postgres_url")
def test_two_workers_against_postgresql_complete_the_budget_exactly(write_study, postgres_url, unique_name, capsys):
    name = unique_name("pg_two_workers")
    path = write_study(name=name, storage=postgres_url, n_trials=4)
    study = run_sweep(load_study(path), workers=2, report=False)
    assert states(study) == ["COMPLETE"] * 4
    assert len({t.params["model.init_args.beta"] for t in study.trials if counts_toward_budget(t)}) == 4
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    out = capsys.readouterr().out
    assert redact(postgres_url) in out  # the URL is shown, with its password as ***
    if password:
        assert f":{password}@" not in out


@pytest.mark.usefixtures("postgres_url")
def test_postgresql_retries_the_stale_trial_of_a_killed_worker(write_study, postgres_url, unique_name):
    name = unique_name("pg_killed")
    path = write_study(name=name, n_trials=3, config={"trainer.max_steps": 30},
                       heartbeat={"interval": 1, "grace_period": 3, "max_retry": 2})
    completed = _kill_mid_trial(path, storage=postgres_url)
    time.sleep(4)  # past the grace period: the killed worker's trial is stale
    study = run_sweep(load_study(path, storage=postgres_url), report=False)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 1
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == stale[0].number]
    assert len(retried) == 1 and retried[0].params == stale[0].params
    assert {t.number: t.values for t in trials if t.number in completed} == completed


def test_a_sqlite_storage_works_for_one_worker(write_study, tmp_path):
    path = write_study(storage=f"sqlite:///{tmp_path / 'study.db'}", n_trials=1)
    study = run_sweep(load_study(path), report=False)
    assert states(study) == ["COMPLETE"]
    assert (tmp_path / "study.db").stat().st_size > 0


def test_trials_write_their_logs_on_every_slurm_node(write_study, monkeypatch):
    """Under srun, Lightning takes SLURM_PROCID as the rank: node 2's trials would log nothing."""
    from lightning.pytorch.utilities import rank_zero_only

    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # as Lightning set it at import on that node
    path = write_study(n_trials=1)
    (trial,) = run_sweep(load_study(path), report=False).trials
    assert trial.state == TrialState.COMPLETE
    assert (load_study(path).output_dir / "trial-0000" / "metrics.csv").is_file()
    assert list((load_study(path).output_dir / "trial-0000" / "wandb").glob("offline-run-*"))

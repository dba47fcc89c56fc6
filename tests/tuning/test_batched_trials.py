"""``infoae sweep --batch-trials K``: K trials trained as one stacked model, each still its own trial."""

from __future__ import annotations

import csv

import optuna
import pytest
import torch
from optuna.trial import TrialState
from wandb_records import run_record, run_summary

import infoae_pl.nets.heads as heads
from infoae_pl._compat import trial_id
from infoae_pl.cli import main
from infoae_pl.models import BetaELBO
from infoae_pl.tuning import batched, load_study, run_sweep
from infoae_pl.tuning.spec import StudySpecError

BETAS = [0.3, 1.0, 3.0]


def _grid(**extra):
    return {"search_space": {"model.init_args.beta": {"type": "grid", "values": BETAS}, **extra},
            "sampler": "grid", "n_trials": None}


def _rows(trial_dir, column):
    with (trial_dir / "metrics.csv").open() as handle:
        return {int(r["step"]): float(r[column]) for r in csv.DictReader(handle) if r.get(column)}


def _by_beta(study):
    return {t.params["model.init_args.beta"]: t for t in study.trials}


def test_batched_trials_log_and_score_exactly_like_separate_trials(write_study, monkeypatch, capsys):
    """Reparameterisation noise off: the same losses at every logged step, the same objective, the same weights."""
    monkeypatch.setattr(heads.torch, "randn_like", torch.zeros_like)
    separate_spec = load_study(write_study("separate", **_grid()))
    batched_spec = load_study(write_study("batched", **_grid()))
    separate = _by_beta(run_sweep(separate_spec, report=False))
    batched = _by_beta(run_sweep(batched_spec, report=False, batch_trials=3))
    assert "3 trials per stacked model" in capsys.readouterr().out
    for beta in BETAS:
        alone, together = separate[beta], batched[beta]
        assert together.state == TrialState.COMPLETE
        assert together.values == [pytest.approx(alone.values[0], rel=1e-4)]
        alone_dir = separate_spec.output_dir / f"trial-{alone.number:04d}"
        together_dir = batched_spec.output_dir / f"trial-{together.number:04d}"
        for column in ("train/loss", "train/kl", "val/nll", "val/recon_nll", "val/kl"):  # deterministic without noise
            expected, got = _rows(alone_dir, column), _rows(together_dir, column)
            assert got.keys() == expected.keys(), f"{column} logged at other steps"
            assert list(got.values()) == pytest.approx(list(expected.values()), rel=1e-4, abs=1e-5), column
        (alone_ckpt,) = (p for p in (alone_dir / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt")
        (together_ckpt,) = (p for p in (together_dir / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt")
        assert together_ckpt.name == alone_ckpt.name
        reloaded = BetaELBO.load_from_checkpoint(together_ckpt, map_location="cpu")
        assert reloaded.hparams.beta == beta
        for a, b in zip(torch.load(alone_ckpt, weights_only=False)["state_dict"].values(), reloaded.state_dict().values()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert (together_dir / "config.yaml").is_file()
        (wandb_run,) = (together_dir / "wandb").glob("offline-run-*")
        record = run_record(wandb_run)
        assert record.run_group == "batched" and record.display_name == f"batched-trial-{together.number:04d}"
        assert run_summary(wandb_run)["final/val/nll"] == pytest.approx(together.values[0])
        assert together.user_attrs["run_dir"] == str(together_dir.resolve())
        assert together.user_attrs["wandb_run_id"] == record.run_id


def test_a_pruned_and_a_non_finite_trial_stop_alone(write_study, monkeypatch):
    """β = 1e39 overflows float32 (fails at its first step); trial 2 is pruned at its first report (the
    pruner's verdict is forced); the others train to the end, and every trial keeps its record."""
    pruned_number = 2
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == pruned_number)
    spec = load_study(write_study(
        "mixed", pruner="median", config={"trainer.max_steps": 15}, sampler="grid", n_trials=None,
        search_space={"model.init_args.beta": {"type": "grid", "values": [1e39, 1.0, 2.0, 0.5]}},
    ))
    study = run_sweep(spec, report=False, batch_trials=4)
    trials = {t.number: t for t in study.trials}
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"].startswith("NonFiniteLossError: training loss became inf at step 0")
    assert trials[pruned_number].state == TrialState.PRUNED and list(trials[pruned_number].intermediate_values) == [0]
    assert list((spec.output_dir / f"trial-{pruned_number:04d}" / "checkpoints").glob("epoch=0-step=5.ckpt"))
    for number in (1, 3):
        assert trials[number].state == TrialState.COMPLETE
        assert sorted(trials[number].intermediate_values) == [0, 1, 2]  # three epochs of five steps
        assert trials[number].intermediate_values[2] == pytest.approx(trials[number].values[0])
    pruned_rows = _rows(spec.output_dir / f"trial-{pruned_number:04d}", "train/loss")
    assert max(pruned_rows) < 5 < max(_rows(spec.output_dir / "trial-0001", "train/loss"))
    assert len(run_sweep(spec, report=False, batch_trials=4).trials) == 4, "re-running retries nothing"


def test_batches_respect_the_budget_and_resume(write_study, capsys, monkeypatch):
    monkeypatch.setattr(batched, "PROGRESS_SECONDS", 0.0)  # a progress line every step
    path = write_study("budget", n_trials=3)
    study = run_sweep(load_study(path), report=False, batch_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    out = capsys.readouterr().out
    assert "[sweep budget] trials 0-1 (batch of 2): step 5/10, 2 training, " in out
    finished = [line for line in out.splitlines() if " COMPLETE in " in line]
    assert sum("batch of 2" in line for line in finished) == 2 and "batch of 1" not in out, "a lone trial runs unstacked"
    more = run_sweep(load_study(path, n_trials=4), report=False, batch_trials=2)
    assert len(more.trials) == 4 and all(t.state == TrialState.COMPLETE for t in more.trials)


def test_unstackable_studies_are_refused_before_any_trial(write_study, capsys):
    data_key = write_study("data", search_space={"data.batch_size": {"type": "categorical", "choices": [50, 100]}})
    with pytest.raises(StudySpecError, match=r"also varies data.batch_size: run with --batch-trials 1"):
        run_sweep(load_study(data_key), batch_trials=2)
    lr = write_study("lr", search_space={"model.init_args.lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    with pytest.raises(StudySpecError, match=r"cannot be stacked: copy 'point1' differs from copy 'point0' in \['lr'\]"):
        run_sweep(load_study(lr), batch_trials=2)
    assert main(["sweep", str(data_key), "--batch-trials", "0"]) == 2
    assert "--batch-trials must be an integer >= 1, got 0" in capsys.readouterr().err
    assert not (load_study(data_key).output_dir / "study.journal").exists(), "nothing was created"


def test_batched_trials_on_a_database_storage_send_heartbeats(write_study, tmp_path, monkeypatch):
    """With an RDB storage every trial of a batch reports alive while it trains, as study.optimize does for
    one (Optuna deletes a finished trial's heartbeat row, so the storage's calls are recorded)."""
    beats = []
    record = optuna.storages.RDBStorage.record_heartbeat
    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat",
                        lambda self, trial_id: (beats.append(trial_id), record(self, trial_id))[1])
    path = write_study("beats", storage=f"sqlite:///{tmp_path / 'study.db'}", n_trials=2,
                       heartbeat={"interval": 1, "grace_period": 3})
    study = run_sweep(load_study(path), report=False, batch_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert set(beats) == {trial_id(t) for t in study.trials}


def test_two_workers_batch_trials_against_postgresql(write_study, postgres_url, unique_name):
    path = write_study(name=unique_name("pg_batched"), storage=postgres_url, n_trials=5)
    study = run_sweep(load_study(path), workers=2, report=False, batch_trials=2)
    counted = [t for t in study.trials if t.state != TrialState.FAIL]
    assert len(counted) == 5 and all(t.state == TrialState.COMPLETE for t in counted)
    assert len({t.params["model.init_args.beta"] for t in counted}) == 5

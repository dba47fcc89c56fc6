"""SIGTERM, as SLURM sends it before pre-empting a job, on real short runs: a fit, a sweep trial and a
reproduction save what they computed, exit within seconds with one line, and the same command resumes.

Each command runs as a subprocess; the test waits until it has trained some steps (a checkpoint of an
epoch, or a printed evaluation), sends it a real SIGTERM and checks what it left behind.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import SIGTERMException
from optuna.trial import TrialState

from infoae_pl.preemption import EXIT_CODE, REASON, RESUME_ATTR, WANDB_ATTR, SaveOnSigterm
from infoae_pl.reproduce import fig1
from infoae_pl.tuning import load_study, open_study, run_sweep

#: How long a command may take to stop after SIGTERM (SLURM's default KillWait is 30 s).
STOP_SECONDS = 20.0
#: How long a command may take to start and train its first steps on a busy machine.
START_SECONDS = 300.0

TINY_RUN = {
    "seed_everything": 0,
    "model": {
        "class_path": "infoae_pl.models.BetaELBO",
        "init_args": {"beta": 1.0, "latent_dim": 1, "likelihood": "gaussian", "hidden_dim": 16, "lr": 0.003},
    },
    # Ten steps an epoch: a validation and a checkpoint every ten steps tell that training is under way.
    "data": {"dataset": "mog1d", "batch_size": 100, "steps_per_epoch": 10, "val_size": 100, "test_size": 100},
    "trainer": {"max_steps": 300, "log_every_n_steps": 5, "enable_progress_bar": False,
                "enable_model_summary": False},
}


@dataclass
class Stopped:
    """A command stopped by SIGTERM: its exit status, seconds from the signal to its exit, its output."""

    returncode: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def run_until_sigterm(args: list[str], cwd: Path, ready: Callable[[Path], bool], name: str) -> Stopped:
    """Start ``infoae ARGS`` in ``cwd``, send it SIGTERM once ``ready(stderr file)`` holds, wait for its exit."""
    out, err = cwd / f"{name}.out", cwd / f"{name}.err"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "INFOAE_THREADS": "1"}
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "infoae_pl.cli", *args], cwd=cwd, env=env,
                                   stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not ready(err):
                if process.poll() is not None:
                    pytest.fail(f"infoae {' '.join(args)} ended before it was signalled:\n{err.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"infoae {' '.join(args)} trained nothing in {START_SECONDS:g} s")
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"infoae {' '.join(args)} still ran 60 s after SIGTERM")
            seconds = time.monotonic() - signalled
        finally:
            process.kill()
            process.wait()
    return Stopped(process.returncode, seconds, out.read_text(), err.read_text())


def assert_stopped_promptly_with_one_line(stopped: Stopped, prefix: str) -> None:
    assert stopped.returncode == EXIT_CODE, stopped.stderr[-3000:]
    assert stopped.seconds < STOP_SECONDS
    assert stopped.last_line.startswith(f"{prefix}: "), stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr


def saved_step(line: str) -> tuple[int, Path]:
    """The step and checkpoint named by a pre-emption message ("... at step N; saved PATH; ...")."""
    match = re.search(r"at step (\d+); (?:state )?saved (?:in )?(\S+?);", line)
    assert match, line
    return int(match.group(1)), Path(match.group(2))


def epoch_checkpoint(folder: Path, after: int = 0) -> Callable[[Path], bool]:
    """Ready once ``folder`` holds an epoch's checkpoint past step ``after``: a resumed run first saves again
    the epoch end it was stopped at, before it has trained a step."""
    def ready(_: Path) -> bool:
        return any(int(re.search(r"step=(\d+)", c.name).group(1)) > after
                   for c in (folder / "checkpoints").glob("epoch=*.ckpt"))
    return ready


def logged_steps(metrics: Path) -> list[int]:
    """The steps a run logged its training loss at. A row's step is the number of steps done before it, so a
    run resumed after step N logs N, N+k, ...: its first logged step is >= N, never below (a restart logs 0+)."""
    with metrics.open() as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")]


@pytest.mark.slow
def test_sigterm_stops_a_fit_with_a_checkpoint_that_the_same_command_resumes(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "max_steps": 100_000}}))
    command = ["fit", "--config", str(config)]
    runs = tmp_path / "runs" / "infoae"

    first = run_until_sigterm(command, tmp_path, epoch_checkpoint(runs / "version_0"), "first")
    assert_stopped_promptly_with_one_line(first, "infoae")
    assert "pre-empted (SIGTERM)" in first.last_line and "run the same command again to resume" in first.last_line
    step, checkpoint = saved_step(first.last_line)
    assert (tmp_path / checkpoint).parent == runs / "version_0" / "checkpoints"
    assert torch.load(tmp_path / checkpoint, weights_only=False)["global_step"] == step >= 10

    second = run_until_sigterm(command, tmp_path, epoch_checkpoint(runs / "version_1", after=step), "second")
    assert f"resuming the pre-empted run of this config from step {step}" in second.stdout
    assert_stopped_promptly_with_one_line(second, "infoae")
    assert min(logged_steps(runs / "version_1" / "metrics.csv")) >= step  # training went on, not from 0
    later, _ = saved_step(second.last_line)
    assert later > step


class EpochsSeen(Callback):
    """Records (epoch, global step) at every training epoch's start and end; sends this process SIGTERM at the
    end of epoch ``stop_at`` (Lightning's handler, installed during the fit, stops the fit there)."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.started, self.ended = stop_at, [], []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started.append((trainer.current_epoch, trainer.global_step))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.ended.append((trainer.current_epoch, trainer.global_step))
        if trainer.current_epoch == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_fit_stopped_at_an_epoch_end_resumes_with_the_next_epoch_and_no_empty_one(tmp_path):
    def trainer(max_steps: int, seen: EpochsSeen) -> L.Trainer:
        return L.Trainer(max_steps=max_steps, limit_train_batches=4, limit_val_batches=1, num_sanity_val_steps=0,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[SaveOnSigterm(tmp_path / "preempted.ckpt"), seen])

    first = EpochsSeen(stop_at=0)
    with pytest.raises(SIGTERMException):
        trainer(100, first).fit(BoringModel())
    assert first.ended == [(0, 4)]

    second = EpochsSeen()
    resumed = trainer(12, second)
    resumed.fit(BoringModel(), ckpt_path=tmp_path / "preempted.ckpt")
    # Lightning finishes the stopped epoch's end again (as from its own epoch-end checkpoints), then trains
    # epochs 1 and 2 of four steps each; stopped after counting epoch 0 completed, it ran an empty epoch 1.
    assert second.started == [(1, 4), (2, 8)]
    assert second.ended == [(0, 4), (1, 8), (2, 12)]
    assert resumed.current_epoch == 3


@pytest.mark.slow
def test_a_sweep_trial_stopped_by_sigterm_runs_again_from_its_checkpoint_in_its_wandb_run(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY_RUN))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "study_name": "preempted", "base_config": "base.yaml", "output_dir": str(tmp_path / "out"),
        "search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 5.0, "log": True}},
        "objectives": [{"metric": "val/loss", "direction": "minimize"}],
        "sampler": {"name": "random", "seed": 0}, "n_trials": 1,
    }))
    trial_dir = tmp_path / "out" / "trial-0000"

    stopped = run_until_sigterm(["sweep", str(study), "--no-report"], tmp_path, epoch_checkpoint(trial_dir), "sweep")
    assert_stopped_promptly_with_one_line(stopped, "infoae sweep")
    assert "trial 0 pre-empted (SIGTERM)" in stopped.last_line
    step, checkpoint = saved_step(stopped.last_line)
    assert (tmp_path / checkpoint) == trial_dir / "checkpoints" / "preempted.ckpt" and step >= 10

    lost, retry = sorted(open_study(load_study(study)).trials, key=lambda t: t.number)
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"] == REASON and lost.user_attrs["retried"]
    assert retry.state == TrialState.WAITING and retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs[RESUME_ATTR] == "trial-0000/checkpoints/preempted.ckpt"

    finished = run_sweep(load_study(study), report=False)  # the same sweep again
    completed = [t for t in finished.trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in completed] == [1] and completed[0].params == lost.params
    assert min(logged_steps(tmp_path / "out" / "trial-0001" / "metrics.csv")) >= step  # resumed, not from 0
    assert list((tmp_path / "out" / "trial-0001" / "checkpoints").glob(f"*-step={TINY_RUN['trainer']['max_steps']}.ckpt"))
    run_ids = [folder.name.rsplit("-", 1)[1] for n in (0, 1)
               for folder in (tmp_path / "out" / f"trial-{n:04d}" / "wandb").glob("offline-run-*")]
    assert run_ids == [retry.user_attrs[WANDB_ATTR]] * 2  # one W&B run, resumed


@pytest.mark.slow
def test_batched_trials_stopped_by_sigterm_each_resume_from_their_own_checkpoint(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY_RUN))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "study_name": "batch", "base_config": "base.yaml", "output_dir": str(tmp_path / "out"),
        "search_space": {"model.init_args.beta": {"type": "grid", "values": [0.5, 2.0]}}, "sampler": "grid",
        "objectives": [{"metric": "val/loss", "direction": "minimize"}],
    }))
    out = tmp_path / "out"

    def logged_a_row(_: Path) -> bool:  # a batch's CSV metrics are flushed every 100 steps
        metrics = out / "trial-0000" / "metrics.csv"
        return metrics.is_file() and len(metrics.read_text().splitlines()) > 1

    command = ["sweep", str(study), "--no-report", "--batch-trials", "2"]
    stopped = run_until_sigterm(command, tmp_path, logged_a_row, "batch")
    assert_stopped_promptly_with_one_line(stopped, "infoae sweep")
    assert "trials 0, 1 pre-empted (SIGTERM)" in stopped.last_line
    trials = sorted(open_study(load_study(study)).trials, key=lambda t: t.number)
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials[:2]] == [(TrialState.FAIL, REASON)] * 2
    retries = {t.user_attrs["retry_of"]: t for t in trials[2:]}
    assert sorted(retries) == [0, 1] and all(t.state == TrialState.WAITING for t in retries.values())
    steps = {n: torch.load(out / t.user_attrs[RESUME_ATTR], weights_only=False)["global_step"]
             for n, t in retries.items()}
    assert all(step >= 100 for step in steps.values())

    finished = run_sweep(load_study(study), report=False, batch_trials=2)  # the same sweep again
    for n, retry in retries.items():
        done = next(t for t in finished.trials if t.number == retry.number)
        assert done.state == TrialState.COMPLETE and done.params == trials[n].params
        assert min(logged_steps(out / f"trial-{retry.number:04d}" / "metrics.csv")) >= steps[n]
        run_ids = [f.name.rsplit("-", 1)[1] for m in (n, retry.number)
                   for f in (out / f"trial-{m:04d}" / "wandb").glob("offline-run-*")]
        assert run_ids == [retry.user_attrs[WANDB_ATTR]] * 2


@pytest.mark.slow
def test_sigterm_stops_figure_1_keeping_its_curves_and_the_same_command_resumes(tmp_path):
    command = ["reproduce", "fig1", "--profile", "tiny", "--steps", "5000", "--no-progress", "--out", "out"]
    out = tmp_path / "out"

    first = run_until_sigterm(command, tmp_path, lambda err: "[fig1 step 20]" in err.read_text(), "first")
    assert_stopped_promptly_with_one_line(first, "infoae reproduce fig1")
    step, checkpoint = saved_step(first.last_line)
    assert tmp_path / checkpoint == out / fig1.PREEMPTED and step >= 20
    before = fig1.read_curves(out / "curves.csv")
    assert {5, 20} <= {r["step"] for r in before}

    def evaluated_after_resuming(err: Path) -> bool:
        return any(int(s) > step for s in re.findall(r"\[fig1 step (\d+)\]", err.read_text()))

    second = run_until_sigterm(command, tmp_path, evaluated_after_resuming, "second")
    assert "resuming from" in second.stdout
    assert_stopped_promptly_with_one_line(second, "infoae reproduce fig1")
    after = fig1.read_curves(out / "curves.csv")
    keys = [(r["step"], r["run"], r["seed"]) for r in after]
    assert len(keys) == len(set(keys)) and before == after[: len(before)]  # kept, and not repeated
    assert max(r["step"] for r in after) > step


def test_figure_1_refuses_to_resume_another_profiles_preempted_run(tmp_path, capsys):
    (tmp_path / fig1.PREEMPTED).write_bytes(b"")
    (tmp_path / fig1.PREEMPTED_PROFILE).write_text(json.dumps({"name": "tiny", "steps": 5000}))
    with pytest.raises(SystemExit) as stop:
        fig1.main(["--profile", "tiny", "--out", str(tmp_path), "--no-progress"])
    assert stop.value.code == 2
    assert "holds a pre-empted run with other settings (steps 5000 (now 60)" in capsys.readouterr().err

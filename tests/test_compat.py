"""Each wrapper of :mod:`infoae_pl._compat` against the installed Lightning, Optuna, torch and wandb-workspaces.

Every wrapper reaches a private attribute; these tests exercise the behaviour the package relies on,
so an upgrade that moves or changes one fails here, by name, rather than deep inside a training run.
"""

from __future__ import annotations

import csv
import sqlite3
import time
import warnings
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from torch.distributions import Normal

from infoae_pl._compat import (
    attached_trainer,
    cpu_has_native_bf16,
    distribution_validation,
    heartbeat,
    logger_writes_this_step,
    logging_step,
    study_storage,
    trial_id,
    uncounted_optimizer_steps,
    wandb_init_arguments,
    workspace_view,
)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                    default_root_dir=str(tmp_path))
    return L.Trainer(**{**defaults, **kwargs})


# Lightning ---------------------------------------------------------------------------------------
class Recorder(BoringModel):
    """Records, at every training step, what the wrappers say, and logs the batch index."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, object, bool, int]] = []

    def training_step(self, batch, batch_idx):
        trainer = attached_trainer(self)
        self.seen.append((batch_idx, trainer, logger_writes_this_step(trainer), logging_step(trainer)))
        self.log("batch_index", float(batch_idx))
        return super().training_step(batch, batch_idx)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_attached_trainer_is_none_when_detached_and_the_trainer_during_fit(tmp_path):
    module = Recorder()
    assert attached_trainer(module) is None
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(module)
    assert [t for _, t, _, _ in module.seen] == [trainer, trainer]
    assert attached_trainer(module) is trainer


def test_logger_writes_exactly_every_log_every_n_steps_at_the_logging_step(tmp_path):
    module = Recorder()
    logger = CSVLogger(str(tmp_path / "logs"), name="", version="")
    trainer = _trainer(tmp_path, max_steps=10, log_every_n_steps=3, logger=logger)
    trainer.fit(module)
    assert [i for i, *_ in module.seen] == list(range(10))
    assert [step for i, _, _, step in module.seen] == list(range(10)), "the logging step is the batch's index"
    writes = [i for i, _, writes, _ in module.seen if writes]
    # every 3rd step (1-based), and the last step of the run (Lightning logs when the trainer stops)
    assert [i for i in writes if i < 9] == [2, 5, 8]
    with (tmp_path / "logs" / "metrics.csv").open() as handle:
        logged = {int(row["step"]): float(row["batch_index"]) for row in csv.DictReader(handle) if row["batch_index"]}
    assert sorted(logged) == writes, "the steps the loggers wrote are those logger_writes_this_step announced"
    assert all(value == step for step, value in logged.items()), "written at logging_step"


def test_logger_writes_this_step_under_fast_dev_run(tmp_path):
    module = Recorder()
    _trainer(tmp_path, fast_dev_run=2, log_every_n_steps=50).fit(module)
    assert [writes for _, _, writes, _ in module.seen] == [True, True]


class TwoStepsPerBatch(BoringModel):
    """Manual optimisation with two optimiser steps per batch, the first one uncounted."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.batches = 0
        self.global_steps: list[int] = []

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers()
        self.batches += 1
        before = self.layer.weight.detach().clone()
        with uncounted_optimizer_steps(optimizer):
            optimizer.zero_grad()
            self.manual_backward(self.step(batch))
            optimizer.step()
        assert not torch.equal(before, self.layer.weight), "the uncounted step updated the weights"
        uncounted = self.trainer.global_step
        optimizer.zero_grad()
        self.manual_backward(self.step(batch))
        optimizer.step()  # counted: the hooks are back after the context
        self.global_steps.append((uncounted, self.trainer.global_step))


def test_uncounted_optimizer_steps_do_not_advance_global_step(tmp_path):
    module = TwoStepsPerBatch()
    trainer = _trainer(tmp_path, max_steps=2)
    trainer.fit(module)
    assert module.batches == 2, "max_steps counts the counted steps only"
    assert module.global_steps == [(0, 1), (1, 2)]
    assert trainer.global_step == 2


def test_wandb_init_arguments_changed_before_the_run_starts_reach_wandb_init(tmp_path):
    logger = WandbLogger(project="compat", save_dir=str(tmp_path), mode="offline")
    wandb_init_arguments(logger).update(name="named", group="grouped", job_type="checked", config={"a": {"b": 1}})
    run = logger.experiment
    try:
        assert (run.name, run.group, run.job_type, run.config["a"]) == ("named", "grouped", "checked", {"b": 1})
    finally:
        run.finish()


# wandb-workspaces --------------------------------------------------------------------------------
def test_workspace_view_is_the_saved_specification_of_its_panels():
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    workspace = ws.Workspace(entity="e", project="p", name="view", sections=[ws.Section(name="s", panels=[
        wr.ScatterPlot(x=wr.Config("model.init_args.beta"), y=wr.SummaryMetric("final/val/nll"), log_x=True),
    ])], runset_settings=ws.RunsetSettings(filters=ws.And(ws.Metric("Group") == "g")))
    view = workspace_view(workspace)
    assert (view["entity"], view["project"], view["displayName"]) == ("e", "p", "view")
    (section,) = view["spec"]["section"]["panelBankConfig"]["sections"]
    (panel,) = section["panels"]
    assert section["name"] == "s" and panel["viewType"] == "Scatter Plot"
    assert panel["config"] == {"xAxis": "config:model.value.init_args.beta", "yAxis": "summary:final/val/nll",
                               "xAxisLogScale": True}
    (condition,) = view["spec"]["section"]["runSets"][0]["filters"]["filters"]
    assert (condition["key"], condition["op"], condition["value"]) == ({"section": "run", "name": "group"}, "=", "g")


# torch -------------------------------------------------------------------------------------------
def _validates() -> bool:
    try:
        Normal(torch.tensor(0.0), torch.tensor(-1.0))
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("default", [True, False])
def test_distribution_validation_switches_and_restores(default):
    previous = _validates()
    torch.distributions.Distribution.set_default_validate_args(default)
    try:
        with distribution_validation(False):
            assert not _validates()
        assert _validates() is default
        with distribution_validation(True):
            assert _validates()
        assert _validates() is default
        with pytest.raises(RuntimeError), distribution_validation(not default):
            raise RuntimeError("restored on the way out of an error too")
        assert _validates() is default
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_cpu_has_native_bf16_agrees_with_the_kernels_cpu_flags():
    flags = {flag for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for flag in line.split(":", 1)[1].split()}
    assert cpu_has_native_bf16() is bool({"avx512_bf16", "amx_tile"} & flags)


# Optuna ------------------------------------------------------------------------------------------
def test_study_storage_and_trial_id_reach_the_storages_trial(tmp_path):
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    for storage in (journal, f"sqlite:///{tmp_path / 'study.db'}"):
        study = optuna.create_study(study_name="compat", storage=storage)
        asked = study.ask()
        study.tell(study.ask(), 1.0)
        backend = study_storage(study)
        assert isinstance(backend, optuna.storages.BaseStorage)
        if storage is journal:
            assert backend is journal, "the very storage the study was opened on"
        frozen = {t.number: t for t in study.get_trials()}
        for number in (asked.number, asked.number + 1):
            assert backend.get_trial(trial_id(frozen[number])).number == number
        assert trial_id(asked) == trial_id(frozen[asked.number])
        # what recover_dead_local_trials does through them
        backend.set_trial_user_attr(trial_id(asked), "fail_reason", "died")
        assert backend.set_trial_state_values(trial_id(asked), TrialState.FAIL)
        failed = study.trials[asked.number]
        assert failed.state == TrialState.FAIL and failed.user_attrs["fail_reason"] == "died"


def _heartbeats(path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT heartbeat FROM trial_heartbeats")]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_keeps_an_asked_trial_alive_on_an_rdb_storage(tmp_path):
    storage = RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="beats", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ask-and-tell with heartbeats is what the wrapper is for
        trial = study.ask()
    with heartbeat(study, trial):
        time.sleep(0.5)
        first = _heartbeats(tmp_path / "study.db")
        time.sleep(2.5)  # past the grace period: alive only because the thread beats
        second = _heartbeats(tmp_path / "study.db")
        optuna.storages.fail_stale_trials(study)
        assert study.trials[0].state == TrialState.RUNNING
    assert len(first) == 1 and len(second) == 1 and second[0] > first[0], "the thread updates the heartbeat"
    time.sleep(3.5)  # no more beats: stale (SQLite's now() has 1 s resolution, so 2.5 s could read as 2)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL


def test_heartbeat_does_nothing_on_a_journal(tmp_path):
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))))
    trial = study.ask()
    with heartbeat(study, trial):
        pass
    study.tell(trial, 0.0)
    assert study.trials[0].state == TrialState.COMPLETE

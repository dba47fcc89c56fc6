"""Several sweep trials trained as one vectorised model: ``infoae sweep STUDY.yaml --batch-trials K``.

The K trials' run configs may differ only in the model's coefficient arguments and the seed
(:func:`check_batchable` refuses other search spaces before the study starts). They train as one
:class:`~infoae_pl.models.stacked.StackedModules` under one Lightning run, and every trial keeps
what a separate trial has: its folder with ``config.yaml``, CSV metrics, its own W&B run, its
checkpoint; validation metrics from a validation run of its own module with the config's callbacks,
at the cadence the trainer config sets; pruning; its objective values. A pruned trial, or one whose
loss stops being finite, is cut out of the stack at the next step and stops costing compute.

This module only trains and reports each trial's outcome on its :class:`TrialSlot`; asking Optuna for
the trials, keeping them alive and telling their outcomes is :mod:`infoae_pl.tuning.asktell`'s.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import torch
import wandb
import yaml
from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from infoae_pl._compat import logger_writes_this_step, logging_step
from infoae_pl.evaluation import EvaluationCallback
from infoae_pl.loggers import BestAndFinal
from infoae_pl.models.stacked import StackedModules
from infoae_pl.preemption import CHECKPOINT_NAME, Preempted, resumable_epoch_progress, resume_attrs
from infoae_pl.quiet import lightning_info_silenced
from infoae_pl.rng_isolation import IsolatedValidationRng
from infoae_pl.training import FinalValidation
from infoae_pl.tuning.spec import StudySpec, StudySpecError
from infoae_pl.tuning.trial import (
    TrialCLI,
    build_cli,
    objective_modes,
    objective_values,
    quiet_trial_warnings,
    record_run_attrs,
    trial_loggers,
)

#: Search-space keys a batch of trials may vary: the model's arguments (each class says which of them
#: are coefficients) and the seed.
BATCHABLE_PREFIXES = ("model.init_args.", "seed_everything")
#: Callbacks a batched trial runs per copy; Lightning's own bars, summaries, checkpoints and config saving are handled.
PER_COPY_CALLBACKS = (EvaluationCallback,)
_HANDLED_CALLBACKS = (ProgressBar, ModelSummary, Checkpoint, SaveConfigCallback, FinalValidation,
                      IsolatedValidationRng)
#: Seconds between a batch's progress lines.
PROGRESS_SECONDS = 60.0


def check_batchable(spec: StudySpec, batch_trials: int) -> None:
    """Refuse, before any trial, a study whose trials cannot share one stacked model."""
    if isinstance(batch_trials, bool) or not isinstance(batch_trials, int) or batch_trials < 1:
        raise StudySpecError(f"--batch-trials must be an integer >= 1, got {batch_trials!r}")
    if batch_trials == 1:
        return
    others = [k for k in spec.search_space if not k.startswith(BATCHABLE_PREFIXES)]
    if others:
        raise StudySpecError(
            f"--batch-trials {batch_trials} stacks trials that differ only in model.init_args.* and seed_everything;"
            f" the search space also varies {', '.join(others)}: run with --batch-trials 1"
        )
    points = list(spec.grid[:2]) if len(spec.grid) > 1 else [
        {k: _extreme(d, end) for k, d in spec.search_space.items()} for end in (0, 1)
    ]
    try:
        clis = [build_cli(spec.trial_config(p)) for p in points]
        stack(clis, [f"point{i}" for i in range(len(clis))])
        group_trainer_config(clis[0])
    except ValueError as error:
        raise StudySpecError(f"--batch-trials {batch_trials}: these trials cannot be stacked: {error}") from None


def _extreme(distribution: optuna.distributions.BaseDistribution, end: int) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return distribution.choices[-end]
    return distribution.high if end else distribution.low


def model_arguments(cli: TrialCLI) -> dict[str, Any]:
    """The constructor arguments of the trial's model, as instantiated (links such as data_dim applied)."""
    return {k: v for k, v in cli.model.hparams.items() if not k.startswith("_")}


def stack(clis: list[TrialCLI], names: list[str]) -> StackedModules:
    """The trials' models as one stacked model, each copy initialised as its separate trial would be."""
    classes = {type(cli.model) for cli in clis}
    if len(classes) > 1:
        raise ValueError(f"trials of one batch must share the model class, got {sorted(c.__name__ for c in classes)}")
    cls = classes.pop()
    seeds = [int(cli.config["seed_everything"]) if isinstance(cli.config["seed_everything"], int) else 0 for cli in clis]
    return StackedModules(f"{cls.__module__}.{cls.__qualname__}", {}, [model_arguments(cli) for cli in clis],
                          names=names, seeds=seeds, on_non_finite="stop_copy")


def group_trainer_config(cli: TrialCLI) -> tuple[dict[str, Any], list[L.Callback]]:
    """The trial config's trainer arguments (without callbacks and logger) and its per-copy callbacks."""
    config_init = cli.config_init[cli.subcommand] if cli.subcommand else cli.config_init
    config = dict(config_init.get("trainer", {}))
    config.pop("logger", None)
    callbacks = config.pop("callbacks", None) or []
    unsupported = sorted({type(c).__name__ for c in callbacks if not isinstance(c, (*PER_COPY_CALLBACKS, *_HANDLED_CALLBACKS))})
    if unsupported:
        raise ValueError(f"trainer.callbacks has {unsupported}, which batched trials do not run per trial "
                         f"(supported: {', '.join(c.__name__ for c in PER_COPY_CALLBACKS)})")
    if config.get("gradient_clip_val"):
        raise ValueError("trainer.gradient_clip_val: clipping by a norm over stacked copies would couple the trials")
    return config, [c for c in callbacks if isinstance(c, PER_COPY_CALLBACKS)]


@dataclass
class TrialSlot:
    """One trial of a batch: its Optuna trial, folder, loggers, callbacks and what it has logged."""

    trial: optuna.Trial
    name: str
    directory: Path
    loggers: list[Logger]
    callbacks: list[L.Callback]
    save_checkpoint: bool
    metrics: dict[str, float] = field(default_factory=dict)
    state: str = "running"  # running, pruned, failed, complete, preempted
    reason: str = ""
    values: list[float] | None = None
    resume: dict[str, str] = field(default_factory=dict)  # preempted: what its retry resumes from


class TrialGroup(L.Callback):
    """Logs, evaluates, prunes and checkpoints each copy of the stacked model as its own trial, and
    prints a progress line every ``progress_seconds`` (trials of a batch all finish at its end)."""

    def __init__(self, spec: StudySpec, slots: list[TrialSlot], progress_seconds: float = 60.0) -> None:
        self.spec = spec
        self.slots = {slot.name: slot for slot in slots}
        self.summaries = {slot.name: BestAndFinal(objective_modes(spec)) for slot in slots}  # W&B best/final
        self.epoch = 0  # of the last training step (the trainer's counter moves on when an epoch ends)
        self.progress_seconds = progress_seconds
        self.started = self.printed = time.perf_counter()

    def running(self, pl_module: StackedModules) -> list[TrialSlot]:
        return [self.slots[n] for n in pl_module.names if self.slots[n].state == "running"]

    def on_fit_start(self, trainer: L.Trainer, pl_module: StackedModules) -> None:
        datamodule = trainer.datamodule
        data_hparams = dict(datamodule.hparams_initial) if datamodule is not None else {}
        for module, slot in zip(pl_module.unstack(), self.slots.values()):
            for logger in slot.loggers:
                logger.log_hyperparams({**data_hparams, **module.hparams_initial})

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: StackedModules, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.epoch = trainer.current_epoch
        now = time.perf_counter()
        if now - self.printed >= self.progress_seconds:
            self.printed = now
            numbers = [s.trial.number for s in self.slots.values()]
            total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
            print(f"[sweep {self.spec.study_name}] trials {min(numbers)}-{max(numbers)} (batch of {len(numbers)}): "
                  f"step {trainer.global_step}{total}, {len(pl_module.names)} training, {now - self.started:.0f} s",
                  flush=True)
        for name, reason in pl_module.stopped.items():
            slot = self.slots[name]
            if slot.state == "running":
                slot.state, slot.reason = "failed", reason
        if not logger_writes_this_step(trainer):
            return
        step = logging_step(trainer)
        for i, name in enumerate(pl_module.names):
            slot = self.slots[name]
            if slot.state != "running":
                continue
            values = {f"train/{k}": float(v[i]) for k, v in pl_module.last_terms.items()}
            slot.metrics.update(values)
            for logger in slot.loggers:
                logger.log_metrics({**values, "epoch": trainer.current_epoch}, step=step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: StackedModules) -> None:
        if trainer.sanity_checking:
            return
        step = logging_step(trainer)
        slots = self.running(pl_module)
        for module, slot in zip(pl_module.unstack([s.name for s in slots]), slots):
            metrics = self.evaluate(trainer, module, slot, "validate")
            slot.metrics.update(metrics)
            self.summaries[slot.name].record(metrics, slot.loggers)
            for logger in slot.loggers:
                logger.log_metrics({**metrics, "epoch": trainer.current_epoch}, step=step)
            if self.spec.pruner == "none":
                continue
            monitor = self.spec.metrics[0]
            if monitor not in metrics:  # as optuna-integration's callback does: warn, do not prune
                warnings.warn(f"the pruner monitors {monitor!r}, which validation did not log; logged: "
                              f"{sorted(metrics)}", stacklevel=2)
                continue
            # The same report as optuna-integration's PyTorchLightningPruningCallback: per epoch.
            slot.trial.report(metrics[monitor], step=trainer.current_epoch)
            if slot.trial.should_prune():
                slot.state, slot.reason = "pruned", f"pruned at epoch {trainer.current_epoch}"
                self.checkpoint(trainer, pl_module, module, slot, trainer.current_epoch)
                pl_module.stop_copies({slot.name: slot.reason})

    @staticmethod
    def evaluate(trainer: L.Trainer, module: L.LightningModule, slot: TrialSlot, stage: str) -> dict[str, float]:
        """Metrics of one copy from a validation or test run of its own module with its trial's callbacks."""
        device = trainer.strategy.root_device
        with lightning_info_silenced(), quiet_trial_warnings():
            evaluator = L.Trainer(
                accelerator=device.type, devices=[device.index or 0] if device.type == "cuda" else 1,
                precision=trainer.precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, callbacks=slot.callbacks, default_root_dir=str(slot.directory),
                limit_val_batches=trainer.limit_val_batches, limit_test_batches=trainer.limit_test_batches,
            )
            if stage == "validate":
                evaluator.validate(module, dataloaders=trainer.val_dataloaders, verbose=False)
            else:
                evaluator.test(module, datamodule=trainer.datamodule, verbose=False)
        return {k: float(v) for k, v in evaluator.callback_metrics.items()}

    def on_exception(self, trainer: L.Trainer, pl_module: StackedModules, exception: BaseException) -> None:
        """SIGTERM (pre-emption): each running copy's checkpoint, with the loops' progress, from which its
        trial's retry resumes as a separate run."""
        if not isinstance(exception, SIGTERMException):
            return
        slots = self.running(pl_module)
        for module, slot in zip(pl_module.unstack([s.name for s in slots]), slots):
            with resumable_epoch_progress(trainer):
                path = self.checkpoint(trainer, pl_module, module, slot, self.epoch, preempted=True)
            slot.state, slot.reason = "preempted", f"pre-empted (SIGTERM) at step {trainer.global_step}"
            run_id = next((logger.version for logger in slot.loggers if isinstance(logger, WandbLogger)), None)
            slot.resume = resume_attrs(Preempted(checkpoint=path, wandb_run_id=run_id), self.spec.output_dir)

    @staticmethod
    def checkpoint(trainer: L.Trainer, pl_module: StackedModules, module: L.LightningModule, slot: TrialSlot,
                   epoch: int, preempted: bool = False) -> Path | None:
        """The copy's Lightning checkpoint (weights, hyperparameters, its Adam state) in ``<trial>/checkpoints``;
        ``preempted``: ``preempted.ckpt`` (whatever the config says on checkpoints) with the loops' progress too."""
        if not (slot.save_checkpoint or preempted):
            return None
        checkpoint = {
            "epoch": epoch,
            "global_step": trainer.global_step,
            "pytorch-lightning_version": L.__version__,
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams_initial),
            "optimizer_states": pl_module.copy_optimizer_state(slot.name),
            "lr_schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        }
        module.on_save_checkpoint(checkpoint)
        name = f"epoch={epoch}-step={trainer.global_step}.ckpt"
        if preempted:
            checkpoint["loops"] = {"fit_loop": trainer.fit_loop.state_dict()}
            name = CHECKPOINT_NAME
        path = slot.directory / "checkpoints" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, path)
        return path

    def finish(self, trainer: L.Trainer, pl_module: StackedModules) -> None:
        """After training: each running copy's checkpoint, test metrics if an objective needs them, values."""
        slots = self.running(pl_module)
        needs_test = any(m.startswith("test/") for m in self.spec.metrics)
        for module, slot in zip(pl_module.unstack([s.name for s in slots]), slots):
            try:  # one trial's failure here (a test-time error, a missing metric) fails that trial alone
                self.checkpoint(trainer, pl_module, module, slot, self.epoch)
                if needs_test:
                    metrics = self.evaluate(trainer, module, slot, "test")
                    slot.metrics.update(metrics)
                    self.summaries[slot.name].record(metrics, slot.loggers)
                    for logger in slot.loggers:
                        logger.log_metrics(metrics, step=logging_step(trainer))
                slot.values = objective_values(self.spec, slot.metrics)
                slot.state = "complete"
            except Exception as error:
                slot.state, slot.reason = "failed", f"{type(error).__name__}: {error}"[:2000]


def run_trial_batch(spec: StudySpec, trials: list[optuna.Trial], params: list[dict[str, Any]]) -> list[TrialSlot]:
    """Train the (asked) trials as one stacked model; returns each trial's slot with its outcome
    (``state``: complete, pruned or failed), values and reason, for :func:`~infoae_pl.tuning.asktell.tell`;
    SIGTERM leaves the running ones ``preempted``, with what their retries resume from."""
    wandb.finish()  # a run left open by earlier code in this process would swallow the trials' logs
    slots: list[TrialSlot] = []
    try:
        with quiet_trial_warnings(), lightning_info_silenced():
            clis = [build_cli(spec.trial_config(p)) for p in params]
        reference = _without_batchable(clis[0].config)
        for trial, cli in zip(trials[1:], clis[1:]):
            if _without_batchable(cli.config) != reference:
                raise ValueError(f"trial {trial.number}'s config differs from trial {trials[0].number}'s outside "
                                 "model.init_args and seed_everything")
        names = [f"trial-{t.number:04d}" for t in trials]
        model = stack(clis, names)
        trainer_config, _ = group_trainer_config(clis[0])
        save_checkpoint = trainer_config.pop("enable_checkpointing", True) is not False
        for trial, p, cli, name in zip(trials, params, clis, names):
            directory = spec.output_dir / name
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "config.yaml").write_text(yaml.safe_dump(spec.trial_config(p), sort_keys=False))
            _, callbacks = group_trainer_config(cli)
            loggers = trial_loggers(spec, trial, p, directory, concurrent=True)
            cli.describe_wandb_runs([logger for logger in loggers if isinstance(logger, WandbLogger)])
            record_run_attrs(trial, directory, loggers)
            slots.append(TrialSlot(trial, name, directory, loggers, callbacks, save_checkpoint))
            cli.model = None  # the stacked model holds the weights now
        group = TrialGroup(spec, slots, PROGRESS_SECONDS)
        with quiet_trial_warnings():
            trainer = L.Trainer(**{**trainer_config, "logger": False, "enable_checkpointing": False,
                                   "callbacks": [group, FinalValidation(), IsolatedValidationRng()]})
            trainer.fit(model, datamodule=clis[0].datamodule)
            if trainer.interrupted:  # Ctrl-C: the trials stay RUNNING and run again on resume
                raise KeyboardInterrupt("a batch of trials was interrupted")
            group.finish(trainer, model)
    except SIGTERMException:  # pre-empted: the trials run again, from the checkpoints saved on the way out
        if not slots:
            slots = [TrialSlot(t, f"trial-{t.number:04d}", spec.output_dir, [], [], False) for t in trials]
        for slot in slots:
            if slot.state == "running":
                slot.state, slot.reason = "preempted", "pre-empted (SIGTERM) before its checkpoint"
    except SystemExit as error:  # Lightning turns Ctrl-C into sys.exit(1)
        raise KeyboardInterrupt("a batch of trials was interrupted") from error
    except Exception as error:  # the whole batch failed (bad config, out of memory, a bug): each trial says why
        reason = f"{type(error).__name__}: {error}"[:2000]
        if not slots:
            slots = [TrialSlot(t, f"trial-{t.number:04d}", spec.output_dir, [], [], False) for t in trials]
        for slot in slots:
            if slot.state in ("running", "complete"):
                slot.state, slot.reason = "failed", reason
    finally:
        for slot in slots:
            for logger in slot.loggers:
                logger.finalize("success" if slot.state == "complete" else "failed")
                if isinstance(logger, WandbLogger):
                    logger.experiment.finish()
    return slots


def _without_batchable(config: Any) -> dict[str, Any]:
    """A trial config without the parts trials of one batch may vary."""
    flat = config.as_dict() if hasattr(config, "as_dict") else dict(config)
    flat = {k: v for k, v in flat.items() if k not in ("seed_everything", "model")}
    flat["model_class"] = config["model"]["class_path"]
    return flat

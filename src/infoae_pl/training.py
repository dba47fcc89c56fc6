"""The LightningCLI of ``infoae fit|validate|test``, shared by the command, sweep trials and reproductions.

:mod:`infoae_pl.cli` only dispatches and imports this module when a trainer subcommand runs, so that
``infoae --help``, ``infoae theory`` and ``infoae sweep --help`` start without Lightning.

Every run writes into a folder of its own (``runs/infoae/version_N`` by default) whatever its loggers,
ends with a validation of its last step and a checkpoint (``checkpoints/last.ckpt``), and ``infoae``
prints where its results went. A W&B run is named, grouped, tagged and configured from the resolved
config (:mod:`infoae_pl.loggers`), and its summary keeps the monitored metric's best and final values.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from jsonargparse.typing import PositiveInt
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from infoae_pl.data import InfoAEDataModule
from infoae_pl.errors import OptionError, OptionErrorsCLI
from infoae_pl.loggers import BestAndFinal, describe_run, run_description
from infoae_pl.precision import float32_fallback
from infoae_pl.preemption import (
    SaveOnSigterm,
    fingerprint,
    forget_preempted,
    preempted_checkpoint,
    stop_on_sigterm,
)
from infoae_pl.quiet import QuietCLI
from infoae_pl.rng_isolation import IsolatedValidationRng

#: The environment variable that sets torch's CPU threads where ``--threads`` is not given.
THREADS_ENV = "INFOAE_THREADS"
#: Where runs go by default: ``runs/infoae/version_N``.
RUNS_DIR, RUN_NAME = "runs", "infoae"
#: What a run writes before any work: a failed command whose run folder holds only these leaves no folder.
_START_FILES = frozenset({"config.yaml", "hparams.yaml"})
#: ``--ckpt_path`` values Lightning resolves itself rather than reading a file.
_NAMED_CHECKPOINTS = frozenset({"last", "best", "hpc", "registry"})


def threads_setting(option: int | None = None) -> int | None:
    """The CPU thread count asked for: ``option`` (``--threads``), else ``INFOAE_THREADS``, else None
    (torch's default, one thread per core)."""
    if option is not None:
        return option
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise OptionError(f"{THREADS_ENV}={raw!r}: must be a whole number >= 1 (e.g. 1 on a busy shared machine)")
    return int(raw)


def use_threads(option: int | None = None) -> int | None:
    """Set torch's intra- and inter-op CPU threads to :func:`threads_setting` before work starts; returns it.

    Torch accepts the inter-op count once per process, before any inter-op work: a later call keeps it."""
    threads = threads_setting(option)
    if threads is not None:
        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(threads)
    return threads


class FinalValidation(Callback):
    """Validates the last training step when the validation cadence would skip it, so that a run always
    ends with its final metrics and the checkpoint saved after them.

    At the last step it sets ``trainer.should_stop``, which Lightning answers with a validation (as for
    early stopping); a step the cadence validates anyway is validated once. Where validation still cannot
    run at the end (``check_val_every_n_epoch`` skips the last epoch), it warns.
    """

    def __init__(self) -> None:
        self.validated_step = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validated_step = trainer.global_step  # nothing trained yet: nothing to validate

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        last_step = 0 < trainer.max_steps <= trainer.global_step
        last_epoch = (trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1
                      and batch_idx + 1 == trainer.num_training_batches)
        if last_step or last_epoch:
            trainer.should_stop = True

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_step = trainer.global_step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.enable_validation and self.validated_step != trainer.global_step:
            rank_zero_warn(f"the last step ({trainer.global_step}) was not validated: trainer.check_val_every_n_epoch="
                           f"{trainer.check_val_every_n_epoch} skips epoch {trainer.current_epoch}; the last "
                           f"validation and checkpoint are from step {self.validated_step}")


def monitored_metrics(trainer: Trainer) -> dict[str, str]:
    """The metrics the trainer's checkpoint and early-stopping callbacks monitor, with their modes (min or
    max); ``val/loss`` (min), which every module logs, where none monitors one."""
    monitored = {callback.monitor: callback.mode for callback in trainer.callbacks
                 if isinstance(callback, (ModelCheckpoint, EarlyStopping)) and callback.monitor}
    return monitored or {"val/loss": "min"}


def next_run_folder(parent: Path) -> Path:
    """``parent/version_N`` with N one more than the highest there (CSVLogger's numbering, so both share it)."""
    taken = [int(p.name[len("version_"):]) for p in parent.glob("version_*") if p.name[len("version_"):].isdigit()]
    return parent / f"version_{max(taken, default=-1) + 1}"


def run_folder_arguments(trainer_config: Any) -> dict[str, Any]:
    """Trainer arguments that give a run a folder of its own whatever its loggers: without a logger,
    ``default_root_dir`` becomes ``<default_root_dir or runs>/infoae/version_N``; when the first logger
    keeps no versioned folder (W&B), a CSVLogger goes first, so the run also gets ``metrics.csv``."""
    logger = trainer_config.get("logger")
    if logger is None or logger is True:  # Lightning's default logger: lightning_logs/version_N
        return {}
    loggers: list[Logger] = [] if logger is False else list(logger) if isinstance(logger, list) else [logger]
    if not loggers:
        parent = Path(trainer_config.get("default_root_dir") or RUNS_DIR) / RUN_NAME
        return {"logger": False, "default_root_dir": str(next_run_folder(parent))}
    if isinstance(loggers[0], (CSVLogger, TensorBoardLogger)):
        return {}
    save_dir = loggers[0].save_dir or trainer_config.get("default_root_dir") or RUNS_DIR
    return {"logger": [CSVLogger(save_dir=save_dir, name=RUN_NAME), *loggers]}


def forget_inherited_run_names(trainer_config: Any) -> None:
    """A W&B logger chosen in a config replaces the default CSVLogger and inherits its ``name: infoae``
    (jsonargparse keeps the arguments both classes take): not a run name the user gave, so it goes, and
    the run gets its described name (:meth:`InfoAECLI.describe_wandb_runs`)."""
    logger = trainer_config.get("logger")
    for entry in logger if isinstance(logger, list) else [logger]:
        class_path = entry.get("class_path") if hasattr(entry, "get") else None
        if not class_path or entry.get("init_args", {}).get("name") != RUN_NAME:
            continue
        module, _, name = class_path.rpartition(".")
        if issubclass(getattr(importlib.import_module(module), name), WandbLogger):
            entry["init_args"]["name"] = None


def keep_last_checkpoint(trainer: Trainer) -> None:
    """Make the trainer's checkpoint callback also keep ``checkpoints/last.ckpt`` unless the config says
    otherwise: a link where its one kept checkpoint is always the newest, else a copy."""
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint) and checkpoint.save_last is None:
        checkpoint.save_last = "link" if checkpoint.monitor is None and checkpoint.save_top_k == 1 else True


def _first_missing(path: Path) -> Path | None:
    """The highest ancestor of ``path`` (or itself) that does not exist yet; None if ``path`` exists."""
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def discard_unused_run_folder(run_dir: Path, created: Path) -> None:
    """After a failed command: remove ``run_dir`` if it holds nothing but what a run writes at its start,
    then its parents up to ``created`` (the first folder the command made) while they are empty."""
    if not run_dir.is_dir() or any(p.is_file() and p.name not in _START_FILES for p in run_dir.rglob("*")):
        return
    shutil.rmtree(run_dir)
    folder = run_dir
    while folder != created and folder.parent.is_dir() and not any(folder.parent.iterdir()):
        folder = folder.parent
        folder.rmdir()


def finish_wandb_run(trainer: Trainer | None) -> None:
    """Close the W&B run of a trainer that logged to W&B (its files are complete then)."""
    if trainer is not None and any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        import wandb

        wandb.finish()


class InfoAECLI(OptionErrorsCLI, QuietCLI, LightningCLI):
    """LightningCLI whose model is chosen by class path and whose data is the one shared datamodule.

    Adds ``--threads``, a run folder of its own for every run, :class:`FinalValidation`, validation that
    leaves the training's random streams alone (:mod:`infoae_pl.rng_isolation`) and
    ``checkpoints/last.ckpt``; a command that fails leaves no empty run folder; bf16 precision falls back
    to float32 where the hardware would emulate it (:mod:`infoae_pl.precision`). Bad options raise one short
    error (:class:`~infoae_pl.errors.OptionErrorsCLI`); libraries' noise is silenced (:class:`QuietCLI`).
    """

    def __init__(self, *args: Any, trainer_defaults: dict[str, Any] | None = None, **kwargs: Any) -> None:
        defaults = dict(trainer_defaults or {})
        callbacks = defaults.get("callbacks") or []
        defaults["callbacks"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), FinalValidation(),
                                 IsolatedValidationRng()]
        self._new_run_dir: tuple[Path, Path] | None = None
        try:
            super().__init__(*args, trainer_defaults=defaults, **kwargs)
        except BaseException as error:
            if self._new_run_dir and not (isinstance(error, SystemExit) and error.code in (0, None)):
                discard_unused_run_folder(*self._new_run_dir)
            raise
        finally:
            if getattr(self, "subcommand", None):  # it ran: close its W&B run, or the next run in this process reuses it
                finish_wandb_run(getattr(self, "trainer", None))

    def add_arguments_to_parser(self, parser) -> None:
        # The model's input size always follows the dataset.
        parser.link_arguments("data.data_dim", "model.init_args.data_dim", apply_on="instantiate")
        parser.add_argument(
            "--threads", type=PositiveInt | None, default=None,
            help=f"torch CPU threads (default: ${THREADS_ENV}, else one per core); 1 on a busy shared machine",
        )

    def _subcommand_config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config()
        use_threads(config.get("threads"))
        trainer = config.get("trainer", {})
        forget_inherited_run_names(trainer)
        fallback = float32_fallback(trainer.get("precision"), trainer.get("accelerator", "auto"))
        if fallback:
            rank_zero_warn(fallback)
            trainer["precision"] = "32-true"
        checkpoint = config.get("ckpt_path")
        if checkpoint and checkpoint not in _NAMED_CHECKPOINTS and "://" not in checkpoint \
                and not Path(checkpoint).is_file():
            raise OptionError(f"--ckpt_path {checkpoint}: no such file")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        if "logger" not in kwargs:  # the config's loggers; a sweep trial brings its own folder
            config_init = self.config_init[self.subcommand] if self.subcommand else self.config_init
            kwargs.update(run_folder_arguments(config_init.get("trainer", {})))
        trainer = super().instantiate_trainer(**kwargs)
        keep_last_checkpoint(trainer)
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if wandb_loggers:
            self.describe_wandb_runs(wandb_loggers)
            if not any(isinstance(callback, BestAndFinal) for callback in trainer.callbacks):
                trainer.callbacks.append(BestAndFinal(monitored_metrics(trainer)))
        run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        created = _first_missing(run_dir)
        self._new_run_dir = (run_dir, created) if created else None
        return trainer

    @property
    def job_type(self) -> str:
        """The W&B job type of this command's runs: its subcommand (fit, validate, test)."""
        return self.subcommand or "run"

    def describe_wandb_runs(self, loggers: list[WandbLogger]) -> None:
        """Name, group, tag and configure the W&B runs of ``loggers`` (before they start) from this CLI's
        model and resolved config (:func:`~infoae_pl.loggers.run_description`); what the user set wins."""
        description = run_description(self.model, self._subcommand_config().as_dict(), self.job_type)
        for logger in loggers:
            describe_run(logger, description)

    def before_fit(self) -> None:
        """SIGTERM (a pre-empted cluster job) saves a checkpoint; the same command (the same resolved config,
        ``--ckpt_path`` included) then resumes from it. The note lives in ``.infoae-preempted/`` of the
        working directory (or ``trainer.default_root_dir``) until a run of that config completes."""
        config = self._subcommand_config()
        self._preemption_note = (config["trainer"].get("default_root_dir") or ".", fingerprint(config.as_dict()))
        self.trainer.callbacks.append(SaveOnSigterm(note=self._preemption_note))
        resume = preempted_checkpoint(*self._preemption_note)
        if resume:
            self.config_init[self.subcommand]["ckpt_path"] = str(resume[0])  # what LightningCLI passes to fit
            print(f"infoae fit: resuming the pre-empted run of this config from step {resume[1]} ({resume[0]})",
                  flush=True)

    def after_fit(self) -> None:
        forget_preempted(*self._preemption_note)


CLI_DEFAULTS: dict = dict(
    subclass_mode_model=True,
    seed_everything_default=0,
    save_config_kwargs={"overwrite": True},
    auto_configure_optimizers=False,
)


def results_summary(subcommand: str, trainer: Trainer) -> str:
    """Where a run's results went: its folder, config, metrics, checkpoints, figures and W&B run."""
    run = Path(trainer.log_dir or trainer.default_root_dir)
    lines = [f"infoae {subcommand}: results in {run}"]
    for label, path in (("config", run / "config.yaml"), ("metrics", run / "metrics.csv")):
        if path.is_file():
            lines.append(f"  {label:<11} {path}")
    checkpoint = trainer.checkpoint_callback
    if subcommand == "fit" and isinstance(checkpoint, ModelCheckpoint):
        for label, path in (("best", checkpoint.best_model_path), ("last", checkpoint.last_model_path)):
            if path and Path(path).exists():
                lines.append(f"  {label + ' ckpt':<11} {path}")
    figures = run / "figures"
    if figures.is_dir():
        count = sum(1 for _ in figures.iterdir())
        lines.append(f"  {'figures':<11} {figures} ({count} file{'s' * (count != 1)})")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger.version:
            for folder in sorted(Path(logger.save_dir or ".").glob(f"wandb/*run-*-{logger.version}")):
                lines.append(f"  {'W&B run':<11} {folder} (upload: wandb sync {folder})")
    return "\n".join(lines)


def run_lightning(argv: list[str] | None) -> int:
    """Run ``fit``/``validate``/``test`` through LightningCLI (``argv=None``: the command line); the
    resolved config lands beside the checkpoints, and where the results went is printed."""
    with stop_on_sigterm("infoae", hint="run the same command again to resume"):
        cli = build_cli(argv)
    if cli.trainer.is_global_zero:
        print(results_summary(cli.subcommand, cli.trainer), flush=True)
    return 0


def build_cli(argv: list[str] | None) -> InfoAECLI:
    """The LightningCLI of ``infoae fit|validate|test`` after it ran, so callers can reach its model and trainer."""
    return InfoAECLI(
        LightningModule,
        InfoAEDataModule,
        args=argv,
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": RUNS_DIR, "name": RUN_NAME},
            },
        },
        **CLI_DEFAULTS,
    )


__all__ = ["CLI_DEFAULTS", "THREADS_ENV", "FinalValidation", "InfoAECLI", "build_cli", "monitored_metrics",
           "results_summary", "run_lightning", "threads_setting", "use_threads"]

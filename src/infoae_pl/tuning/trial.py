"""One sweep trial = one ``infoae fit`` run: the same LightningCLI, with the trial's loggers and pruner.

The trial's values are the objectives' metrics as logged at the end of training (after ``test``
too when an objective is a ``test/`` metric); a metric that was never logged or is not finite
fails the trial with a message that lists what was logged.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import wandb
from jsonargparse import ArgumentError
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from optuna_integration import PyTorchLightningPruningCallback

from infoae_pl.data import InfoAEDataModule
from infoae_pl.loggers import WandbOfflineLogger
from infoae_pl.preemption import CHECKPOINT_NAME, WANDB_ATTR, Preempted, SaveOnSigterm, resume_checkpoint
from infoae_pl.quiet import lightning_info_silenced
from infoae_pl.training import CLI_DEFAULTS, InfoAECLI
from infoae_pl.tuning.spec import StudySpec, StudySpecError


class TrialMetricError(RuntimeError):
    """An objective's metric is missing or not finite at the end of a trial."""


class TrialCLI(InfoAECLI):
    """``infoae fit``'s CLI with the sweep's loggers in place of the config's and its callbacks added."""

    def __init__(self, *args: Any, trial_loggers: list[Logger] | bool = False, **kwargs: Any) -> None:
        self.trial_loggers = trial_loggers
        super().__init__(*args, **kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        return super().instantiate_trainer(**{**kwargs, "logger": self.trial_loggers})


def build_cli(config: dict[str, Any], loggers: list[Logger] | bool = False, callbacks: list[Callback] = ()) -> TrialCLI:
    """Parse and instantiate a run config (a dict, as in a config file) without running it."""
    with quiet_trial_warnings():
        return TrialCLI(
            LightningModule,
            InfoAEDataModule,
            args=config,
            run=False,
            trial_loggers=loggers,
            trainer_defaults={"callbacks": list(callbacks)},
            parser_kwargs={"exit_on_error": False},
            **CLI_DEFAULTS,
        )


@contextlib.contextmanager
def quiet_trial_warnings() -> Iterator[None]:
    """Silence two warnings that are expected in a trial: the sweep's own command line is not the
    trial's, and the trial folder already holds its W&B run when the CSV logger starts; and Lightning's
    info lines (the sweep prints one line per trial)."""
    with warnings.catch_warnings(), lightning_info_silenced():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
        yield


def check_run_config(spec: StudySpec) -> None:
    """Instantiate the first grid point (or each parameter at its lower end) so that a misspelt key
    or a value of the wrong type fails before any trial, with jsonargparse's message."""
    params = dict(spec.grid[0]) if spec.grid else {k: _representative(d) for k, d in spec.search_space.items()}
    try:
        build_cli(spec.trial_config(params))
    except (ArgumentError, ValueError, TypeError) as error:
        keys = ", ".join(spec.search_space)
        raise StudySpecError(f"the run config with the search space ({keys}) set does not parse: {error}") from error


def _representative(distribution: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


def trial_loggers(spec: StudySpec, trial: optuna.Trial, params: dict[str, Any], trial_dir: Path,
                  concurrent: bool = False) -> list[Logger]:
    """CSV metrics in the trial's folder and one W&B run per trial, grouped by study, params in config.
    ``concurrent``: the run is one of several open at once in this process (batched trials). The retry
    of a pre-empted trial continues its W&B run (same id)."""
    resumed = trial.user_attrs.get(WANDB_ATTR)
    wandb_logger = WandbOfflineLogger(
        **({"reinit": "create_new"} if concurrent else {}),
        **({"id": resumed, "resume": "allow"} if resumed else {}),
        project=spec.wandb_project,
        save_dir=str(trial_dir),
        name=f"{spec.study_name}-trial-{trial.number}",
        group=spec.study_name,
        job_type="trial",
        config={"optuna": {"study": spec.study_name, "trial": trial.number, "params": params}},
    )
    return [CSVLogger(save_dir=str(trial_dir), name="", version=""), wandb_logger]


def run_trial(spec: StudySpec, trial: optuna.Trial, params: dict[str, Any], trial_dir: Path) -> list[float]:
    """Train the trial's config and return its objective values (raises ``optuna.TrialPruned`` if pruned).
    The retry of a pre-empted trial resumes from its checkpoint; SIGTERM saves one and raises
    :class:`~infoae_pl.preemption.Preempted` with what the retry needs."""
    resume = resume_checkpoint(trial.user_attrs, spec.output_dir)
    save = SaveOnSigterm(trial_dir / "checkpoints" / CHECKPOINT_NAME)
    callbacks: list[Callback] = [save]
    if spec.pruner != "none":
        callbacks.append(PyTorchLightningPruningCallback(trial, monitor=spec.metrics[0]))
    wandb.finish()  # a run left open by earlier code in this process would swallow this trial's logs
    loggers: list[Logger] = []
    try:
        with quiet_trial_warnings():
            loggers = trial_loggers(spec, trial, params, trial_dir)
            cli = build_cli(spec.trial_config(params), loggers, callbacks)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=resume)
            if cli.trainer.interrupted:  # Ctrl-C: stop the sweep; the trial does not use up the budget
                raise KeyboardInterrupt(f"trial {trial.number} was interrupted")
            logged = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
            if any(m.startswith("test/") for m in spec.metrics):  # test() resets callback_metrics
                cli.trainer.test(cli.model, datamodule=cli.datamodule)
                logged.update({k: float(v) for k, v in cli.trainer.callback_metrics.items()})
        return objective_values(spec, logged)
    except SIGTERMException as stop:  # pre-empted: the sweep runs the trial again from the checkpoint
        checkpoint, step = save.saved or (resume, None)
        run_id = next((logger.version for logger in loggers if isinstance(logger, WandbLogger)), None)
        where = f" at step {step}; saved {checkpoint}" if step is not None else ""
        raise Preempted(f"trial {trial.number} pre-empted (SIGTERM){where}; it runs again"
                        + (" from there" if checkpoint else ""), checkpoint, step, run_id) from stop
    except SystemExit as error:  # Lightning turns Ctrl-C into sys.exit(1): stop the sweep the same way
        raise KeyboardInterrupt(f"trial {trial.number} was interrupted") from error
    finally:
        wandb.finish()  # a pruned or failed trial must not leave its run open for the next one


def objective_values(spec: StudySpec, logged: dict[str, float]) -> list[float]:
    values = []
    for metric in spec.metrics:
        if metric not in logged:
            raise TrialMetricError(f"objective metric {metric!r} was never logged; logged: {', '.join(sorted(logged))}")
        if not math.isfinite(logged[metric]):
            raise TrialMetricError(f"objective metric {metric!r} is {logged[metric]}")
        values.append(logged[metric])
    return values

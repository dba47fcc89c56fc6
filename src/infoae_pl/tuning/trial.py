"""One sweep trial = one ``infoae fit`` run: the same LightningCLI, with the trial's loggers and pruner.

The trial's values are the objectives' metrics as logged at the end of training (after ``test``
too when an objective is a ``test/`` metric); a metric that was never logged or is not finite
fails the trial with a message that lists what was logged.

Each trial's W&B run is named ``STUDY-trial-NNNN`` (its folder's number), grouped by study, of job type
``trial``, its config the trial's resolved config plus ``optuna`` (study, trial number, parameters), its
summary the objectives' ``best/…`` and ``final/…`` values (:class:`~infoae_pl.loggers.BestAndFinal`).
The trial's user attributes name its folder and W&B run (:func:`record_run_attrs`).
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
from infoae_pl.loggers import BestAndFinal, WandbOfflineLogger, describe_run
from infoae_pl.preemption import CHECKPOINT_NAME, WANDB_ATTR, Preempted, SaveOnSigterm, resume_checkpoint
from infoae_pl.quiet import lightning_info_silenced
from infoae_pl.training import CLI_DEFAULTS, InfoAECLI
from infoae_pl.tuning.spec import StudySpec, StudySpecError

#: User attributes of a trial that lead to its files: its folder (absolute), its W&B run's local folder,
#: and, online, the run's ``entity/project/id`` and URL; the run's id is :data:`~infoae_pl.preemption.WANDB_ATTR`.
RUN_DIR_ATTR, WANDB_DIR_ATTR, WANDB_PATH_ATTR, WANDB_URL_ATTR = "run_dir", "wandb_run_dir", "wandb_run_path", "wandb_run_url"


class TrialMetricError(RuntimeError):
    """An objective's metric is missing or not finite at the end of a trial."""


class TrialCLI(InfoAECLI):
    """``infoae fit``'s CLI with the sweep's loggers in place of the config's and its callbacks added."""

    def __init__(self, *args: Any, trial_loggers: list[Logger] | bool = False, **kwargs: Any) -> None:
        self.trial_loggers = trial_loggers
        super().__init__(*args, **kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        return super().instantiate_trainer(**{**kwargs, "logger": self.trial_loggers})

    @property
    def job_type(self) -> str:
        """The W&B job type of a sweep trial's run."""
        return "trial"


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
                  concurrent: bool = False, continue_run: str | None = None) -> list[Logger]:
    """CSV metrics in the trial's folder and one W&B run per trial, named after it, grouped by study,
    params in config (W&B's environment variables, :data:`~infoae_pl.loggers.IDENTITY_ENV`, win).
    ``concurrent``: the run is one of several open at once in this process (batched trials).
    ``continue_run``: the id of the W&B run that this trial continues (a pre-empted trial's retry)."""
    wandb_logger = WandbOfflineLogger(
        **({"reinit": "create_new"} if concurrent else {}),
        **({"id": continue_run, "resume": "allow"} if continue_run else {}),
        project=spec.wandb_project,
        save_dir=str(trial_dir),
    )
    describe_run(wandb_logger, {
        "name": f"{spec.study_name}-trial-{trial.number:04d}", "group": spec.study_name, "job_type": "trial",
        "config": {"optuna": {"study": spec.study_name, "trial": trial.number, "params": params}},
    })
    return [CSVLogger(save_dir=str(trial_dir), name="", version=""), wandb_logger]


def objective_modes(spec: StudySpec) -> dict[str, str]:
    """Each objective's metric with ``min`` or ``max``, for :class:`~infoae_pl.loggers.BestAndFinal`."""
    return {o.metric: "min" if o.direction == "minimize" else "max" for o in spec.objectives}


def record_run_attrs(trial: optuna.Trial, trial_dir: Path, loggers: list[Logger]) -> None:
    """Set the trial's user attributes that lead to its files (:data:`RUN_DIR_ATTR`, :data:`WANDB_ATTR`,
    :data:`WANDB_DIR_ATTR`, and online :data:`WANDB_PATH_ATTR`, :data:`WANDB_URL_ATTR`); starts its W&B run."""
    attrs: dict[str, str] = {RUN_DIR_ATTR: str(Path(trial_dir).resolve())}
    for run in (logger.experiment for logger in loggers if isinstance(logger, WandbLogger)):
        if not run.disabled:
            attrs.update({WANDB_ATTR: run.id, WANDB_DIR_ATTR: str(Path(run.dir).parent.resolve())})
            if not run.offline:
                attrs.update({WANDB_PATH_ATTR: run.path, WANDB_URL_ATTR: run.url})
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def run_trial(spec: StudySpec, trial: optuna.Trial, params: dict[str, Any], trial_dir: Path) -> list[float]:
    """Train the trial's config and return its objective values (raises ``optuna.TrialPruned`` if pruned).
    The retry of a pre-empted trial resumes from its checkpoint; SIGTERM saves one and raises
    :class:`~infoae_pl.preemption.Preempted` with what the retry needs."""
    resume = resume_checkpoint(trial.user_attrs, spec.output_dir)
    save = SaveOnSigterm(trial_dir / "checkpoints" / CHECKPOINT_NAME)
    callbacks: list[Callback] = [save, BestAndFinal(objective_modes(spec))]
    if spec.pruner != "none":
        callbacks.append(PyTorchLightningPruningCallback(trial, monitor=spec.metrics[0]))
    wandb.finish()  # a run left open by earlier code in this process would swallow this trial's logs
    loggers: list[Logger] = []
    try:
        with quiet_trial_warnings():
            # The W&B run goes on only where training does: a retry that starts afresh starts a new run.
            loggers = trial_loggers(spec, trial, params, trial_dir,
                                    continue_run=trial.user_attrs.get(WANDB_ATTR) if resume else None)
            cli = build_cli(spec.trial_config(params), loggers, callbacks)
            record_run_attrs(trial, trial_dir, loggers)
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

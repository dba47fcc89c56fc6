"""The W&B logger with the project's defaults: offline unless the user asks for online; each run named,
grouped, tagged and described by its resolved config, its summary holding the watched metrics' best and
final values.

A run's name, group, tags and job type given to the logger (``name``, ``group``, ``tags``, ``job_type``)
or through W&B's environment variables (:data:`IDENTITY_ENV`) win over the defaults set here.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from argparse import Namespace
from collections.abc import Iterable, Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, WandbLogger

from infoae_pl._compat import wandb_init_arguments
from infoae_pl.validation import check_choice

WANDB_MODES = ("offline", "online", "disabled")
#: W&B's environment variables for a run's name, group, tags and job type: set, they win over the defaults.
IDENTITY_ENV = {"name": "WANDB_NAME", "group": "WANDB_RUN_GROUP", "tags": "WANDB_TAGS", "job_type": "WANDB_JOB_TYPE"}
#: Prefixes of the summary keys :class:`BestAndFinal` writes: ``best/val/nll`` (best over the validations),
#: ``final/val/nll`` (the value at the end: a sweep trial's objective value).
BEST, FINAL = "best/", "final/"
MODES = ("min", "max")


class WandbOfflineLogger(WandbLogger):
    """A ``WandbLogger`` whose mode is ``WANDB_MODE`` when set, else ``offline``: nothing needs the network.

    Offline run files land in ``save_dir/wandb/offline-run-*``; upload them later with ``wandb sync``.
    ``log_model=True`` records the run's checkpoints as a W&B artifact at its end (``"all"``: each one as
    it is saved), offline too: ``wandb sync`` uploads them with the run. W&B prints nothing (no banner, no
    run summary: ``infoae`` says where the run went) unless ``WANDB_SILENT=false``.
    """

    def __init__(self, project: str = "infoae-pl", save_dir: str = "runs", mode: str | None = None, **kwargs: Any) -> None:
        mode = mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ValueError(f"W&B mode={mode!r} is not supported; choose one of: {', '.join(WANDB_MODES)}")
        os.makedirs(save_dir, exist_ok=True)
        if os.environ.get("WANDB_SILENT", "true").lower() not in ("false", "0"):
            import wandb

            wandb.setup(settings=wandb.Settings(silent=True))  # before init, whose own warnings print too
        super().__init__(project=project, save_dir=save_dir, mode=mode, **kwargs)
        # W&B's service, shared by the runs of a process, resolves a relative folder against its own working directory.
        wandb_init_arguments(self)["dir"] = os.path.abspath(save_dir)

    def log_hyperparams(self, params: dict[str, Any] | Namespace) -> None:
        """Lightning's module and datamodule arguments go under ``hparams``: the config's top level is the
        run's resolved config (model class path and init args, data, trainer), as in its config file."""
        super().log_hyperparams({"hparams": dict(vars(params) if isinstance(params, Namespace) else params)})


def run_description(model: LightningModule, config: Mapping[str, Any], job_type: str) -> dict[str, Any]:
    """The W&B defaults of a run of ``model`` built from the resolved LightningCLI ``config``: named
    ``Family-dataset`` plus the coefficients set away from their defaults (``BetaELBO-mog1d-beta=4``),
    grouped by family and dataset, tagged with both, and the whole config, nested as in its file."""
    family = type(model).__name__
    dataset = str((config.get("data") or {}).get("dataset", "data"))
    name = "-".join([family, dataset, *coefficients_set(model)])
    return {"name": name, "group": f"{family}-{dataset}", "tags": [family, dataset], "job_type": job_type,
            "config": json.loads(json.dumps({k: v for k, v in config.items() if k != "config"}, default=str))}


def coefficients_set(model: LightningModule) -> list[str]:
    """``key=value`` for each scalar coefficient argument of ``model`` (``COEFFICIENT_HPARAMS``) whose value
    differs from its class's default."""
    defaults = {k: p.default for k, p in inspect.signature(type(model)).parameters.items()}
    shown = []
    for key in getattr(type(model), "COEFFICIENT_HPARAMS", ()):
        value = model.hparams.get(key)
        if isinstance(value, (bool, int, float, str)) and key in defaults and value != defaults[key]:
            shown.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return shown


def describe_run(logger: WandbLogger, description: Mapping[str, Any]) -> None:
    """Give ``logger``'s run (before it starts) the ``name``, ``group``, ``tags`` and ``job_type`` of
    ``description`` that neither the logger's arguments nor :data:`IDENTITY_ENV` set, and its ``config``
    beneath the config the logger was given (whose keys win)."""
    arguments = wandb_init_arguments(logger)
    for key, variable in IDENTITY_ENV.items():
        if arguments.get(key) is not None:
            continue
        if os.environ.get(variable):  # passed on: W&B reads its environment once per process
            arguments[key] = os.environ[variable].split(",") if key == "tags" else os.environ[variable]
        elif key in description:
            arguments[key] = description[key]
    if "config" in description:
        arguments["config"] = {**description["config"], **(arguments.get("config") or {})}


class BestAndFinal(Callback):
    """Writes each watched metric's best value over the validations (``best/<metric>``) and its latest
    value (``final/<metric>``: at the end of a run, its final value) into the W&B run summary, so that a
    sweep's objectives and a fit's monitored metric read at a glance. ``test/`` metrics have a final only.

    ``modes`` maps each metric to ``min`` or ``max`` (which value is best).
    """

    def __init__(self, modes: Mapping[str, str]) -> None:
        for metric, mode in modes.items():
            check_choice(f"mode of {metric}", mode, MODES)
        self.modes = dict(modes)
        self.best: dict[str, float] = {}

    def record(self, metrics: Mapping[str, Any], loggers: Iterable[Logger]) -> dict[str, float]:
        """Note the watched metrics among ``metrics`` (one validation's or test's), write the summary into
        each W&B logger of ``loggers`` and return it."""
        summary = {}
        for metric, mode in self.modes.items():
            if metric not in metrics:
                continue
            value = float(metrics[metric])
            summary[FINAL + metric] = value
            if metric.startswith("test/"):
                continue
            best = self.best.get(metric)
            if math.isfinite(value) and (best is None or (value < best if mode == "min" else value > best)):
                self.best[metric] = best = value
            if best is not None:
                summary[BEST + metric] = best
        if summary:
            for logger in loggers:
                if isinstance(logger, WandbLogger):
                    logger.experiment.summary.update(summary)
        return summary

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.record(trainer.callback_metrics, trainer.loggers)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.record(trainer.callback_metrics, trainer.loggers)


__all__ = ["BEST", "FINAL", "IDENTITY_ENV", "WANDB_MODES", "BestAndFinal", "WandbOfflineLogger", "coefficients_set",
           "describe_run", "run_description"]

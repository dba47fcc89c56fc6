"""Before a sweep's first trial: each objective metric is one the trials log, at a cadence they reach.

A trial's value is its objective metrics as logged at the end of training, so a misspelt metric, or a
validation metric that the trainer's validation cadence never reaches within ``max_steps``, would
fail every trial after all of its training. The names come from the trials' own model and callbacks
run once on one batch (validation; test or one training step when an objective needs them); the
cadence from the trainer's settings, read as Lightning reads them.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import itertools
import math
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import optuna
from lightning.pytorch.callbacks import Checkpoint, ModelSummary, ProgressBar, Timer
from lightning.pytorch.cli import SaveConfigCallback

from infoae_pl.evaluation import EvaluationCallback
from infoae_pl.quiet import lightning_info_silenced
from infoae_pl.training import FinalValidation
from infoae_pl.tuning.spec import StudySpec, StudySpecError
from infoae_pl.tuning.trial import TrialCLI, build_cli, quiet_trial_warnings

#: What the dry run's copy of an EvaluationCallback computes at most: the names, not good numbers.
DRY_RUN_CAPS = {"max_examples": 4, "importance_samples": 16, "prior_samples": 64, "mode_samples": 256}
_LIGHTNING_OWN = (Checkpoint, ModelSummary, ProgressBar, SaveConfigCallback)


@dataclass(frozen=True)
class Logged:
    """Metric names a trial logs, by stage (``None``: could not be determined), and which of the
    validation names the module logs itself (at every validation, unlike a thinned callback)."""

    train: frozenset[str] | None
    val: frozenset[str] | None  # None: validation is off (the cadence check says so)
    val_by_module: frozenset[str]
    test: frozenset[str] | None

    def stage(self, name: str) -> frozenset[str] | None:
        return getattr(self, name.split("/", 1)[0])


def first_point(spec: StudySpec) -> dict[str, Any]:
    """The parameters of the first grid point, or each parameter at its lower end (first choice)."""
    if spec.grid:
        return dict(spec.grid[0])
    return {key: d.choices[0] if isinstance(d, optuna.distributions.CategoricalDistribution) else d.low
            for key, d in spec.search_space.items()}


def check_objectives(spec: StudySpec, batched: bool = False) -> None:
    """Raise :class:`StudySpecError` unless every objective metric will be logged by each trial (as
    configured at :func:`first_point`): the model or its callbacks log the name, and a validation
    metric's validation happens within the trial's training. ``batched``: the trials train as one
    stacked model (``--batch-trials``), whose trainer validates at the config's cadence only."""
    with quiet_trial_warnings(), lightning_info_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = build_cli(spec.trial_config(first_point(spec)))
        stages = {metric.split("/", 1)[0] for metric in spec.metrics}
        try:
            logged = logged_names(cli, stages)
        except Exception as error:  # a trial would fail the same way, after its training
            raise StudySpecError(f"a trial's model and data fail before training: {type(error).__name__}: {error}") from error
        schedule = Schedule.of(cli)
        if batched:
            schedule = dataclasses.replace(schedule, final_validation=False)
    model = type(cli.model).__name__
    for i, metric in enumerate(spec.metrics):
        names = logged.stage(metric)
        if names is not None and metric not in names:
            known = sorted({*(logged.val or ()), *(logged.train or ()), *(logged.test or ())})
            close = difflib.get_close_matches(metric, known, n=1)
            raise StudySpecError(f"objectives[{i}].metric {metric!r} is never logged by {model} with the config's "
                                 f"callbacks (it logs: {', '.join(sorted(names)) or 'nothing at this stage'})"
                                 + (f"; did you mean {close[0]!r}?" if close else ""))
        if metric.startswith("val/"):
            needed = 1 if metric in logged.val_by_module else schedule.every_n_validations
            problem = schedule.validation_problem(needed)
            if problem:
                raise StudySpecError(f"objectives[{i}].metric {metric!r} is logged at validation, but {problem}")
        if metric.startswith("train/") and schedule.total_batches < schedule.log_every_n_steps:
            raise StudySpecError(
                f"objectives[{i}].metric {metric!r} is logged every trainer.log_every_n_steps="
                f"{schedule.log_every_n_steps} steps, but trials end after {_count(schedule.total_batches)} "
                f"({schedule.stops}): lower trainer.log_every_n_steps")


def logged_names(cli: TrialCLI, stages: set[str]) -> Logged:
    """Run the CLI's model on one batch as a trial would: a validation with its callbacks and one
    without them, a test when ``test`` is in ``stages``, one training step when ``train`` is."""
    model, datamodule = cli.model, cli.datamodule
    callbacks = dry_run_callbacks(cli.trainer.callbacks)
    limit_val = 0 if cli.trainer.limit_val_batches == 0 else 1
    with tempfile.TemporaryDirectory() as folder:
        def trainer(**options: Any) -> L.Trainer:
            return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
                             **options)

        by_module = trainer(limit_val_batches=limit_val)
        by_module.validate(model, datamodule=datamodule, verbose=False)
        validation = trainer(limit_val_batches=limit_val, callbacks=callbacks)
        validation.validate(model, datamodule=datamodule, verbose=False)
        test = None
        if "test" in stages:
            tester = trainer(limit_test_batches=1, callbacks=dry_run_callbacks(cli.trainer.callbacks))
            tester.test(model, datamodule=datamodule, verbose=False)
            test = frozenset(tester.callback_metrics)
        train = None
        if "train" in stages:
            step = trainer(max_steps=1, limit_train_batches=1, limit_val_batches=0, log_every_n_steps=1,
                           num_sanity_val_steps=0)
            try:
                step.fit(model, datamodule=datamodule)
                train = frozenset(k for k in step.callback_metrics if k.startswith("train/"))
            except Exception:  # e.g. a first step that is not finite: the trial will say so itself
                train = None
    return Logged(train=train, val=frozenset(validation.callback_metrics) if limit_val else None,
                  val_by_module=frozenset(by_module.callback_metrics), test=test)


def dry_run_callbacks(callbacks: list[L.Callback]) -> list[L.Callback]:
    """The config's callbacks for one cheap evaluation: EvaluationCallbacks copied, evaluating at every
    validation on a few examples without figures; Lightning's own (bars, checkpoints) left out."""
    chosen = []
    for callback in callbacks:
        if isinstance(callback, EvaluationCallback):
            callback = copy.copy(callback)
            callback.every_n_validations, callback.figures = 1, False
            for name, cap in DRY_RUN_CAPS.items():
                setattr(callback, name, min(getattr(callback, name) or cap, cap))
        elif isinstance(callback, _LIGHTNING_OWN) or type(callback).__module__.startswith("lightning."):
            continue
        chosen.append(callback)
    return chosen


@dataclass(frozen=True)
class Schedule:
    """When a trial's trainer validates and stops, in training batches (Lightning's rules for
    ``val_check_interval``, ``check_val_every_n_epoch``, ``max_steps`` and ``max_epochs``, and
    :class:`~infoae_pl.training.FinalValidation`'s validation of the last step)."""

    batches_per_epoch: float
    total_batches: float
    stops: str
    val_check_interval: int | float | None  # None: time-based, not known in advance
    check_val_every_n_epoch: int | None
    validates: bool
    final_validation: bool
    every_n_validations: int
    log_every_n_steps: int

    @classmethod
    def of(cls, cli: TrialCLI) -> Schedule:
        trainer, datamodule = cli.trainer, cli.datamodule
        datamodule.setup("fit")
        try:
            length: float = len(datamodule.train_dataloader())
        except TypeError:  # an iterable without a length: an endless epoch
            length = math.inf
        limit = trainer.limit_train_batches
        per_epoch = min(length, limit) if isinstance(limit, int) else (length if math.isinf(length) else int(length * limit))
        accumulate = trainer.accumulate_grad_batches if cli.model.automatic_optimization else 1
        max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
        if max_epochs is None:  # Lightning's default: 1000 epochs unless max_steps (or max_time) is set
            timed = any(isinstance(c, Timer) for c in trainer.callbacks)
            max_epochs = 1000 if max_steps == -1 and not timed else -1
        by_steps = math.inf if max_steps == -1 else _batches_for_steps(max_steps, accumulate, per_epoch)
        by_epochs = math.inf if max_epochs == -1 else max_epochs * per_epoch
        stops = (f"trainer.max_steps={max_steps}" + (f" × accumulate_grad_batches={accumulate}" if accumulate > 1 else "")
                 if by_steps <= by_epochs else f"trainer.max_epochs={max_epochs} of {_count(per_epoch)}")
        interval = getattr(trainer, "val_check_interval", None)
        callbacks = trainer.callbacks
        every = max((c.every_n_validations for c in callbacks if isinstance(c, EvaluationCallback)), default=1)
        return cls(per_epoch, min(by_steps, by_epochs), stops, interval if isinstance(interval, (int, float)) else None,
                   trainer.check_val_every_n_epoch, trainer.limit_val_batches != 0,
                   any(isinstance(c, FinalValidation) for c in callbacks), every, trainer.log_every_n_steps)

    def cadence(self) -> Iterator[int]:
        """The training batch counts after which ``val_check_interval`` and ``check_val_every_n_epoch``
        validate (endless while training is; raises ValueError where Lightning refuses the interval)."""
        interval, per_epoch, every_epochs = self.val_check_interval, self.batches_per_epoch, self.check_val_every_n_epoch
        if isinstance(interval, int) and every_epochs is None:  # every `interval` batches, across epochs
            yield from itertools.count(interval, interval)
            return
        if isinstance(interval, int):
            if interval > per_epoch:
                raise ValueError(f"trainer.val_check_interval={interval} exceeds the {_count(per_epoch)} of an epoch "
                                 "(Lightning refuses it): set trainer.check_val_every_n_epoch: null to count batches "
                                 "across epochs")
            within = interval
        elif math.isinf(per_epoch):
            return  # validation at the end of an epoch that never ends
        else:
            within = max(1, int(per_epoch * interval))
        for epoch in itertools.count(every_epochs - 1, every_epochs):
            if math.isinf(per_epoch):
                if epoch == 0:
                    yield from itertools.count(within, within)
                return
            start = epoch * per_epoch
            yield from (int(start + j * within) for j in range(1, int(per_epoch // within) + 1))

    def validations(self, limit: int) -> list[int]:
        """The first ``limit`` training batch counts after which a trial validates, the final validation included."""
        if not self.validates:
            return []
        within = list(itertools.islice(itertools.takewhile(lambda b: b <= self.total_batches, self.cadence()), limit))
        if (len(within) < limit and self.final_validation and not math.isinf(self.total_batches)
                and self.validates_last_epoch() and (not within or within[-1] < self.total_batches)):
            within.append(int(self.total_batches))
        return within

    def validates_last_epoch(self) -> bool:
        """Whether ``check_val_every_n_epoch`` lets the epoch of the last training batch validate."""
        if self.check_val_every_n_epoch is None:
            return True
        last_epoch = 0 if math.isinf(self.batches_per_epoch) else math.ceil(self.total_batches / self.batches_per_epoch) - 1
        return (last_epoch + 1) % self.check_val_every_n_epoch == 0

    def validation_problem(self, needed: int) -> str | None:
        """Why a trial does not validate ``needed`` times (the metric's first value), or None if it does."""
        if not self.validates:
            return "validation is off (trainer.limit_val_batches=0)"
        if self.val_check_interval is None:
            return None  # time-based: cannot be known before training
        try:
            if len(self.validations(needed)) == needed:
                return None
            later = list(itertools.islice(self.cadence(), needed))
        except ValueError as error:
            return str(error)
        every = self.check_val_every_n_epoch
        which = "a trial's first validation" if needed == 1 else \
            f"a trial's validation {needed} (EvaluationCallback every_n_validations={needed})"
        when = f"would come after {_count(later[-1])}" if len(later) == needed else "never comes"
        cadence = (f"trainer.val_check_interval={self.val_check_interval}, check_val_every_n_epoch="
                   f"{'null' if every is None else every}, epochs of {_count(self.batches_per_epoch)}")
        closing = (f"; check_val_every_n_epoch={every} also skips the closing validation of its last epoch"
                   if self.final_validation and not self.validates_last_epoch() else "")
        return (f"{which} {when} ({cadence}) and trials end after {_count(self.total_batches)} ({self.stops}){closing}: "
                "set a smaller trainer.val_check_interval or check_val_every_n_epoch, or a larger trainer.max_steps, "
                "in the study's config")


def _batches_for_steps(steps: int, accumulate: int, per_epoch: float) -> float:
    """The training batches of ``steps`` optimizer steps: one step per ``accumulate`` batches, and one at
    the end of each epoch (where Lightning steps an incomplete accumulation too)."""
    if math.isinf(per_epoch):
        return steps * accumulate
    per_epoch_steps = math.ceil(per_epoch / accumulate)
    epochs, rest = divmod(steps, per_epoch_steps)
    return epochs * per_epoch + rest * accumulate


def _count(batches: float) -> str:
    return "endless batches" if math.isinf(batches) else f"{int(batches)} batch{'es' if batches != 1 else ''}"


__all__ = ["Logged", "Schedule", "check_objectives", "dry_run_callbacks", "first_point", "logged_names"]

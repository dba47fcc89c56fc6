"""Optuna's ask and tell for a sweep, in one place: the trial budget, claiming a trial, sampling its
parameters, keeping it alive, and recording its outcome.

The budget counts trials that are COMPLETE, PRUNED, RUNNING or WAITING, and FAILED trials that
failed on their own (a NaN loss, an exception); trials lost with a dead worker are retried instead
and do not count, and neither do surplus trials (asked for when other workers had already used the
budget). Training is not done here: :mod:`infoae_pl.tuning.trial` trains one trial and
:mod:`infoae_pl.tuning.batched` several as one stacked model; both only report their outcome.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from infoae_pl._compat import heartbeat
from infoae_pl.tuning.spec import StudySpec
from infoae_pl.tuning.storage import recover_dead_local_trials, this_worker, uses_heartbeats

#: How a trial ended, as the training code reports it.
OUTCOMES = ("complete", "pruned", "failed")


class SurplusTrialError(RuntimeError):
    """Another worker took the last trial of the budget at the same moment; this one does not run."""


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether ``trial`` uses one of the study's ``n_trials`` (lost and surplus trials do not)."""
    if trial.state != TrialState.FAIL:
        return True
    attrs = trial.user_attrs
    return bool(attrs.get("fail_reason")) and not attrs.get("retried") and not attrs.get("surplus")


def budget_left(spec: StudySpec, study: optuna.Study) -> bool:
    """Whether a worker should ask for another trial. With a database storage, a worker whose budget
    is full waits while other workers' trials run: if one of them dies, its trial turns stale after
    ``heartbeat.grace_period`` and this worker runs the retry, so the study still finishes."""
    while True:
        if uses_heartbeats(spec):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # dead workers' trials become retries first
        else:
            recover_dead_local_trials(study)
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return True
        if sum(counts_toward_budget(t) for t in trials) < spec.n_trials:
            return True
        if not (uses_heartbeats(spec) and any(t.state == TrialState.RUNNING for t in trials)):
            return False
        time.sleep(min(spec.heartbeat.interval, 5))


def trials_to_run(spec: StudySpec, study: optuna.Study) -> int:
    """How many trials the budget still needs: the waiting ones (enqueued or retried) and the rest."""
    known = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in known)  # counted toward the budget, not yet run
    return waiting + spec.n_trials - sum(counts_toward_budget(t) for t in known)


def suggest(trial: optuna.Trial, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` through the public suggest API of its distribution's kind."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def sample(spec: StudySpec, trial: optuna.Trial) -> dict[str, Any]:
    """The trial's value of every key of the search space."""
    return {name: suggest(trial, name, d) for name, d in spec.search_space.items()}


def claim(spec: StudySpec, study: optuna.Study, trial: optuna.Trial) -> bool:
    """Record this worker on ``trial``; False (and the trial marked surplus) when its earlier trials
    already fill the budget. Trial numbers are handed out atomically, so two workers asking at once,
    or a retry racing a fresh trial, cannot both run the last trial of the budget."""
    for key, value in this_worker().items():
        trial.set_user_attr(key, value)
    earlier = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    if sum(counts_toward_budget(t) for t in earlier) < spec.n_trials:
        return True
    trial.set_user_attr("surplus", True)
    trial.set_user_attr("fail_reason", "surplus: the budget was used up by other workers")
    return False


def _objective_value(values: list[float]) -> float | list[float]:
    return values[0] if len(values) == 1 else values


#: Trains one trial: ``train(spec, trial, params, trial_dir)`` returns its objective values or raises
#: (``optuna.TrialPruned`` when pruned).
TrainOne = Callable[[StudySpec, optuna.Trial, dict[str, Any], Path], list[float]]


def make_objective(spec: StudySpec, study: optuna.Study, train: TrainOne):
    """The Optuna objective of one trial at a time (``study.optimize`` asks, keeps the trial alive and
    tells): claim the trial, sample its parameters, ``train`` it, record why it failed."""

    def objective(trial: optuna.Trial) -> float | list[float]:
        if not claim(spec, study, trial):
            raise SurplusTrialError("the budget was used up by other workers at the same moment")
        params = sample(spec, trial)
        trial_dir = spec.output_dir / f"trial-{trial.number:04d}"
        try:
            values = train(spec, trial, params, trial_dir)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}"[:2000])
            raise
        return _objective_value(values)

    return objective


def ask(spec: StudySpec, study: optuna.Study, size: int) -> tuple[list[optuna.Trial], list[dict[str, Any]]]:
    """Up to ``size`` new trials with their sampled parameters, within the budget (the same surplus
    rule as one trial at a time: a trial whose earlier trials fill the budget is failed as surplus)."""
    size = min(size, trials_to_run(spec, study))
    trials, params = [], []
    for _ in range(size):
        trial = study.ask()
        if not claim(spec, study, trial):
            study.tell(trial, state=TrialState.FAIL)
            break
        trials.append(trial)
        params.append(sample(spec, trial))
    return trials, params


@contextlib.contextmanager
def heartbeats(study: optuna.Study, trials: list[optuna.Trial]) -> Iterator[None]:
    """While asked trials train, each reports alive to a heartbeat-enabled (RDB) storage as
    ``study.optimize`` does for one, so a dead worker's trials go stale and are retried."""
    with contextlib.ExitStack() as stack:
        for trial in trials:
            stack.enter_context(heartbeat(study, trial))
        yield


def tell(study: optuna.Study, trial: optuna.Trial, outcome: str, values: list[float] | None = None,
         reason: str = "") -> None:
    """Record an asked trial's ``outcome`` (one of :data:`OUTCOMES`) in the study: its objective
    ``values`` when complete, ``reason`` as its ``fail_reason`` when failed."""
    if outcome == "complete":
        study.tell(trial, _objective_value(values or []))
    elif outcome == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        trial.set_user_attr("fail_reason", (reason or "failed")[:2000])
        study.tell(trial, state=TrialState.FAIL)


__all__ = [
    "OUTCOMES",
    "SurplusTrialError",
    "ask",
    "budget_left",
    "claim",
    "counts_toward_budget",
    "heartbeats",
    "make_objective",
    "sample",
    "suggest",
    "tell",
    "trials_to_run",
]

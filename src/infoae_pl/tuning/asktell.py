"""Optuna's ask and tell for a sweep, in one place: the trial budget, claiming a trial, sampling its
parameters, keeping it alive, and recording its outcome.

The budget counts trials that are COMPLETE, PRUNED, RUNNING or WAITING, and FAILED trials that
failed on their own (a NaN loss, an exception); trials lost with a dead worker or interrupted
(Ctrl-C) run again as a new trial with the same parameters and do not count, and neither do surplus
trials (asked for when other workers had already used the budget) nor failed trials run again on
request (``--retry-failed``: :func:`retry_failed`). Training is not done here: :mod:`infoae_pl.tuning.trial` trains one trial and
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

from infoae_pl._compat import heartbeat, study_storage, trial_id
from infoae_pl.preemption import REASON, Preempted, resume_attrs
from infoae_pl.tuning.interrupts import interrupt_taken
from infoae_pl.tuning.spec import StudySpec
from infoae_pl.tuning.storage import recover_dead_local_trials, this_worker, uses_heartbeats

#: How a trial ended, as the training code reports it.
OUTCOMES = ("complete", "pruned", "failed")


class SurplusTrialError(RuntimeError):
    """Another worker took the last trial of the budget at the same moment; this one does not run."""


def counts_toward_budget(trial: FrozenTrial, replaced: frozenset[int] = frozenset()) -> bool:
    """Whether ``trial`` uses one of the study's ``n_trials``: lost, interrupted and surplus trials do
    not, nor failed trials whose number is in ``replaced`` (:func:`replaced_trials`: run again)."""
    attrs = trial.user_attrs
    if attrs.get("retried") or attrs.get("surplus") or trial.number in replaced:
        return False
    return trial.state != TrialState.FAIL or bool(attrs.get("fail_reason"))


def replaced_trials(trials: list[FrozenTrial]) -> frozenset[int]:
    """The numbers of the trials that another trial runs again (its ``retry_of``)."""
    return frozenset(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs)


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of ``trials`` (all of a study's) that use its budget."""
    replaced = replaced_trials(trials)
    return [t for t in trials if counts_toward_budget(t, replaced)]


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
        if len(counted(trials)) < spec.n_trials:
            return True
        if not (uses_heartbeats(spec) and any(t.state == TrialState.RUNNING for t in trials)):
            return False
        time.sleep(min(spec.heartbeat.interval, 5))


def trials_to_run(spec: StudySpec, study: optuna.Study) -> int:
    """How many trials the budget still needs: the waiting ones (enqueued or retried) and the rest."""
    known = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in known)  # counted toward the budget, not yet run
    return waiting + spec.n_trials - len(counted(known))


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
    for key, value in {**this_worker(), "fingerprint": spec.fingerprint}.items():
        trial.set_user_attr(key, value)
    known = study.get_trials(deepcopy=False)
    replaced = replaced_trials(known)
    if sum(counts_toward_budget(t, replaced) for t in known if t.number < trial.number) < spec.n_trials:
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
        except KeyboardInterrupt:  # Ctrl-C: the trial runs again, from the start, when the sweep resumes
            interrupt_taken()
            run_again(study, trial, "interrupted (Ctrl-C)")
            raise
        except Preempted as stop:  # SIGTERM: the trial runs again from its checkpoint, in its W&B run
            run_again(study, trial, REASON, fail=True, resume=resume_attrs(stop, spec.output_dir))
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


def run_again(study: optuna.Study, trial: optuna.Trial | FrozenTrial, reason: str, fail: bool = False,
              resume: dict[str, str] | None = None) -> None:
    """Mark the RUNNING ``trial`` as one that runs again (``fail_reason`` ``reason``, ``retried``) and
    enqueue a new trial with its parameters; with ``fail``, also fail it (else its caller does).
    ``resume``: the new trial's attributes that resume a pre-empted one (:func:`~infoae_pl.preemption.resume_attrs`)."""
    storage, key = study_storage(study), trial_id(trial)
    storage.set_trial_user_attr(key, "fail_reason", reason)
    storage.set_trial_user_attr(key, "retried", True)
    if fail:
        storage.set_trial_state_values(key, TrialState.FAIL)
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, **(resume or {})},
                        skip_if_exists=False)


def run_again_my_running_trials(study: optuna.Study, reason: str) -> list[int]:
    """Fail and run again (:func:`run_again`) the trials this process was running; returns their numbers."""
    me, numbers = this_worker(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if {k: trial.user_attrs.get(k) for k in me} == me:
            try:
                run_again(study, trial, reason, fail=True)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile (told, or failed by a heartbeat check)
            numbers.append(trial.number)
    return numbers


def retry_failed(spec: StudySpec, study: optuna.Study) -> list[FrozenTrial]:
    """``--retry-failed``: each failed trial that uses the budget runs again as a new trial with its
    parameters (those still in the search space), and stops counting; returns the failed trials.

    Failed trials cannot be changed in Optuna, so the new trial's ``retry_of`` names the one it
    replaces (:func:`replaced_trials`)."""
    known = study.get_trials(deepcopy=False)
    replaced = replaced_trials(known)
    failed = [t for t in known if t.state == TrialState.FAIL and counts_toward_budget(t, replaced)]
    for trial in failed:
        params = {k: v for k, v in trial.params.items()
                  if k in spec.search_space and _contains(spec.search_space[k], v)}
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    return failed


def _contains(distribution: optuna.distributions.BaseDistribution, value: Any) -> bool:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value in distribution.choices
    return distribution.low <= value <= distribution.high


__all__ = [
    "OUTCOMES",
    "SurplusTrialError",
    "ask",
    "budget_left",
    "claim",
    "counted",
    "counts_toward_budget",
    "heartbeats",
    "make_objective",
    "replaced_trials",
    "retry_failed",
    "run_again",
    "run_again_my_running_trials",
    "sample",
    "suggest",
    "tell",
    "trials_to_run",
]

"""Where a study lives: a journal file (default), SQLite, or PostgreSQL for several machines.

URLs are shown only through :func:`redact`, so a password never reaches a log line or a W&B config;
``storage: env:NAME`` reads the URL from the environment (see :mod:`infoae_pl.tuning.credentials`).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from infoae_pl._compat import rdb_storage_noting_stale_trials, study_storage, trial_id
from infoae_pl.tuning.credentials import redact, resolve
from infoae_pl.tuning.spec import StudySpec, StudySpecError

JOURNAL_FILE = "study.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


def storage_url(spec: StudySpec) -> str:
    """The study's storage URL or journal path (``env:NAME``: read from the environment), or the
    default journal file in its output folder."""
    return resolve(spec.storage) if spec.storage else str(spec.output_dir / JOURNAL_FILE)


def _driver_url(url: str) -> str:
    """A plain ``postgresql://`` URL with the driver that is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is None:
            raise StudySpecError("a PostgreSQL storage needs psycopg2-binary or psycopg: pip install psycopg2-binary")
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def make_storage(spec: StudySpec) -> optuna.storages.BaseStorage:
    """Open the study's storage. RDB storages get heartbeats: a trial whose worker stops reporting
    for ``heartbeat.grace_period`` seconds is failed and retried up to ``heartbeat.max_retry`` times."""
    url = storage_url(spec)
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else None
    if scheme is None:
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if scheme not in RDB_SCHEMES:
        raise StudySpecError(f"storage {redact(url)!r}: scheme {scheme!r} is not supported; use a journal file "
                             f"path, sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB")
    beat = spec.heartbeat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return rdb_storage_noting_stale_trials(
                lambda storage, key: note_heartbeat_failure(storage, key, beat.grace_period, beat.max_retry),
                _driver_url(url),
                heartbeat_interval=beat.interval,
                grace_period=beat.grace_period,
                heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=beat.max_retry),
            )
        except Exception as error:  # the message may quote the URL: mask its password
            password = make_url(url).password
            message = str(error).replace(password, "***") if password else str(error)
            raise StudySpecError(f"cannot open storage {redact(url)}: {type(error).__name__}: {redact(message)}") from None


#: What :func:`note_heartbeat_failure` adds to a stale trial; its retry starts without them.
STALE_ATTRS = ("fail_reason", "retried")


def note_heartbeat_failure(storage: optuna.storages.BaseStorage, key: int, grace_period: int, max_retry: int) -> None:
    """Record on a RUNNING trial that the heartbeat is about to fail it: why (``fail_reason``, as a
    journal's dead worker gets), and, when it will run again, ``retried`` (so that only the retry
    counts toward the budget). Optuna's own callback runs once the trial is FAIL, too late to write."""
    trial = storage.get_trial(key)
    attrs = trial.user_attrs
    worker = f"pid {attrs['worker_pid']} on {attrs['worker_host']}" if "worker_pid" in attrs else "its worker"
    retry = len(trial.system_attrs.get("retry_history", [])) < max_retry  # Optuna's rule, see RetryStaleTrial
    reason = (f"no heartbeat for over {grace_period} s (heartbeat.grace_period): worker {worker} stopped; "
              + ("it runs again" if retry else f"not retried: heartbeat.max_retry={max_retry} reached"))
    try:
        storage.set_trial_user_attr(key, "fail_reason", reason)
        if retry:
            storage.set_trial_user_attr(key, "retried", True)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another worker failed it first, with the same reason


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a heartbeat-stale trial (up to ``max_retry`` times, a fresh WAITING trial with
    the same parameters), without the failed trial's :data:`STALE_ATTRS`: the retry starts clean."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        clean = copy.copy(trial)
        clean.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in STALE_ATTRS}
        super().__call__(study, clean)


def uses_heartbeats(spec: StudySpec) -> bool:
    """Whether the storage fails dead workers' trials itself (RDB); journals are recovered by pid instead."""
    return "://" in storage_url(spec)


def this_worker() -> dict[str, str | int]:
    return {"worker_host": socket.gethostname(), "worker_pid": os.getpid()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail and re-enqueue the RUNNING trials of this machine whose worker process has died (journal storages).

    Journal storages have no heartbeat, so a worker killed mid-trial leaves its trial RUNNING for
    ever; its host and pid (recorded when the trial started) tell that nobody is running it.
    RDB storages do the same through heartbeats. Returns the numbers of the recovered trials.
    """
    host, recovered = socket.gethostname(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        pid = attrs.get("worker_pid")
        if attrs.get("worker_host") != host or pid is None or _process_alive(int(pid)):
            continue
        storage, key = study_storage(study), trial_id(trial)
        try:
            storage.set_trial_user_attr(key, "fail_reason", f"worker {attrs['worker_pid']} died")
            storage.set_trial_user_attr(key, "retried", True)
            if not storage.set_trial_state_values(key, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker recovered it first
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        recovered.append(trial.number)
    return recovered

"""Where a study lives: a journal file (default), SQLite, or PostgreSQL for several machines.

URLs are shown only through :func:`redact`, so a password never reaches a log line or a W&B config.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from infoae_pl._compat import study_storage, trial_id
from infoae_pl.tuning.spec import StudySpec, StudySpecError

JOURNAL_FILE = "study.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")


def storage_url(spec: StudySpec) -> str:
    """The study's storage as written by the user, or the default journal file in its output folder."""
    return spec.storage or str(spec.output_dir / JOURNAL_FILE)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; file paths come back unchanged."""
    if "://" not in url:
        return url
    return make_url(url).render_as_string(hide_password=True)


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
            return RDBStorage(
                _driver_url(url),
                heartbeat_interval=beat.interval,
                grace_period=beat.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=beat.max_retry, inherit_intermediate_values=False),
            )
        except Exception as error:  # the message may quote the URL: mask its password
            password = make_url(url).password
            message = str(error).replace(password, "***") if password else str(error)
            raise StudySpecError(f"cannot open storage {redact(url)}: {type(error).__name__}: {message}") from None


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

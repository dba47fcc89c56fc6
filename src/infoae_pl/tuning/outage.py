"""Database outages: each call to a study's database storage is retried, with back-off, for a set time.

A PostgreSQL restart or a network blip fails every storage call of every worker at once, deep inside
Optuna (whose ``optimize`` then hides the cause behind an ``UnboundLocalError``). Retrying each call
where it is made keeps the study consistent: nothing is skipped or repeated, and training goes on
while it waits. After the retry time one :class:`StorageUnavailableError` says so, and every later
call of that storage fails at once, so that the process stops promptly.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy import exc as sql

#: Storage methods that never reach the database.
_LOCAL_METHODS = frozenset({
    "get_heartbeat_interval", "get_heartbeat_stale_trial_callback", "remove_session",
    "_build_frozen_trial_from_trial_model",
})
#: Seconds between the first tries; doubling up to :data:`MAX_DELAY`.
FIRST_DELAY, MAX_DELAY = 0.5, 10.0
#: The exit status of a sweep that gave up on its database (EX_TEMPFAIL: try again later).
EXIT_DATABASE = 75
T = TypeVar("T")


class StorageUnavailableError(RuntimeError):
    """The study's database did not answer for the whole retry time."""


def connection_errors(error: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``error``'s chain (causes and contexts) that mean the database did not answer:
    a refused or lost connection, a server shutting down or starting up; not a refused login or a bad query."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (sql.DisconnectionError, sql.PendingRollbackError)):  # the latter: a session left by one
            yield error
        elif isinstance(error, sql.DBAPIError) and (
                error.connection_invalidated or isinstance(error, (sql.OperationalError, sql.InterfaceError))):
            code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
            if error.connection_invalidated or code is None or str(code)[:2] in ("08", "57"):
                yield error
        error = error.__cause__ or error.__context__


def gave_up(error: BaseException | None) -> StorageUnavailableError | None:
    """The :class:`StorageUnavailableError` that ``error`` is or was raised while handling, if any
    (Optuna's ``optimize`` answers one with an ``UnboundLocalError`` of its own)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, StorageUnavailableError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class Retrier:
    """Calls a function until it stops failing with a connection error, for up to ``seconds`` from the
    first failure; then raises :class:`StorageUnavailableError` and fails every later call at once.
    ``reset`` runs before each retry (a storage drops its session, which a lost connection leaves unusable)."""

    def __init__(self, seconds: float, where: str, reset: Callable[[], None] | None = None) -> None:
        self.seconds, self.where, self.reset = seconds, where, reset
        self.failure: str | None = None

    def __call__(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        deadline, delay = None, FIRST_DELAY
        while True:
            if self.failure:
                raise StorageUnavailableError(self.failure)
            try:
                return function(*args, **kwargs)
            except StorageUnavailableError:
                raise
            except Exception as error:
                cause = next(connection_errors(error), None)
                if cause is None:
                    raise
                now = time.monotonic()
                deadline = now + self.seconds if deadline is None else deadline
                if now >= deadline:
                    reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0][:200]
                    self.failure = (f"the database {self.where} did not answer for {self.seconds:g} s "
                                    f"(--db-retry-seconds; last error: {reason}); re-run the same command "
                                    "to resume once it answers")
                    raise StorageUnavailableError(self.failure) from None
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, MAX_DELAY)
                if self.reset is not None:
                    with contextlib.suppress(Exception):
                        self.reset()


def with_retries(storage: BaseStorage, seconds: float, where: str) -> BaseStorage:
    """``storage`` with every database call retried through an outage of up to ``seconds`` (RDB
    storages; others come back as they are). ``where``: the database as messages show it (no password)."""
    if not isinstance(storage, RDBStorage) or seconds <= 0:
        return storage
    cls = _retrying_class(type(storage))
    retrying = cls.__new__(cls)
    retrying.__dict__.update(vars(storage))  # the same engine and sessions
    retrying.retrier = Retrier(seconds, where, reset=retrying.remove_session)
    return retrying


@functools.cache
def _retrying_class(base: type[RDBStorage]) -> type[RDBStorage]:
    """A subclass of ``base`` whose methods that reach the database go through ``self.retrier``."""
    namespace: dict[str, Any] = {"__doc__": f"{base.__name__} that waits out database outages."}
    for name in dir(base):
        static = inspect.getattr_static(base, name)
        if name.startswith("__") or name in _LOCAL_METHODS or not inspect.isfunction(static):
            continue
        namespace[name] = _retried(getattr(base, name), quiet=name == "record_heartbeat")
    return type(f"Retrying{base.__name__}", (base,), namespace)


def _retried(method: Callable[..., Any], quiet: bool) -> Callable[..., Any]:
    """``method`` through the storage's retrier; ``quiet``: giving up returns None (the heartbeat's
    thread, whose trial's own calls report the outage)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.retrier(method, self, *args, **kwargs)
        except StorageUnavailableError:
            if quiet:
                return None
            raise

    return call


def retry_opening(open_study: Callable[[], optuna.Study], seconds: float, where: str) -> optuna.Study:
    """``open_study()``, retried like a storage call (a worker that starts during an outage)."""
    return Retrier(seconds, where)(open_study)


__all__ = ["EXIT_DATABASE", "Retrier", "StorageUnavailableError", "connection_errors", "gave_up",
           "retry_opening", "with_retries"]

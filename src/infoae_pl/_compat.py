"""Every use of a private API of Lightning, Optuna, torch or wandb-workspaces, in one place.

Each function wraps one private attribute that no public API offers; ``tests/test_compat.py`` checks
each against the installed versions, so an upgrade that moves one fails there, loudly, not deep
inside a training run.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.distributions import Distribution


# Lightning ---------------------------------------------------------------------------------------
def attached_trainer(module: Any) -> Any | None:
    """The trainer a LightningModule is attached to, or None (``module.trainer`` raises when detached)."""
    return module._trainer


def logger_writes_this_step(trainer: Any) -> bool:
    """Whether the trainer's loggers write this step's values (every ``log_every_n_steps``)."""
    return bool(trainer._logger_connector.should_update_logs or trainer.fast_dev_run)


@contextlib.contextmanager
def uncounted_optimizer_steps(optimizer: Any) -> Iterator[None]:
    """Steps of a ``LightningOptimizer`` that do not advance ``trainer.global_step``.

    Under manual optimisation Lightning counts every ``optimizer.step()`` as a global step
    (Lightning-AI/pytorch-lightning#17958), so ``max_steps`` and logging intervals would count critic
    updates too; inside this context the step hooks that count are switched off.
    """
    before, after = optimizer._on_before_step, optimizer._on_after_step
    optimizer._on_before_step = optimizer._on_after_step = _do_nothing
    try:
        yield
    finally:
        optimizer._on_before_step, optimizer._on_after_step = before, after


def _do_nothing() -> None:
    """A hook that does nothing."""


def logging_step(trainer: Any) -> int:
    """The step the trainer's loggers write this step's values at (optimizer steps taken during fit,
    each counted once however many optimizers stepped: not ``global_step`` under manual optimisation)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def wandb_init_arguments(logger: Any) -> dict[str, Any]:
    """The keyword arguments a ``WandbLogger`` passes to ``wandb.init`` when its run starts; changed before
    then, they name, group and describe the run (the logger offers no setter, and W&B fixes a run's group
    and job type at ``init``)."""
    return logger._wandb_init


# Optuna ------------------------------------------------------------------------------------------
def study_storage(study: Any) -> Any:
    """The storage object a study reads and writes through (``Study`` keeps it private; a second one
    opened from the same URL would not share its caches)."""
    return study._storage


def trial_id(trial: Any) -> int:
    """The storage's id of a ``Trial`` or ``FrozenTrial`` (the key of ``BaseStorage``'s trial methods;
    not the trial's ``number``)."""
    return trial._trial_id


@contextlib.contextmanager
def heartbeat(study: Any, trial: Any) -> Iterator[None]:
    """Inside the context, a thread records ``trial``'s heartbeat in a heartbeat-enabled (RDB) storage
    every ``heartbeat_interval`` seconds, as ``study.optimize`` does for its trial; nothing for other
    storages. Ask-and-tell offers no heartbeat of its own."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    with get_heartbeat_thread(trial_id(trial), study_storage(study)):
        yield


def rdb_storage_noting_stale_trials(note: Callable[[Any, int], None], url: str, **options: Any) -> Any:
    """An ``RDBStorage(url, **options)`` that calls ``note(storage, trial_id)`` on each trial its heartbeat
    check finds stale, while the trial is still RUNNING: Optuna's stale-trial callback runs only once
    the trial is FAIL, when its attributes can no longer be written."""
    storage = _noting_rdb_storage()(url, **options)
    storage.note_stale_trial = note
    return storage


@functools.cache
def _noting_rdb_storage() -> type:
    """The class of :func:`rdb_storage_noting_stale_trials` (one class: Optuna is imported on first use)."""
    from optuna.storages import RDBStorage

    class NotingRDBStorage(RDBStorage):
        note_stale_trial: Callable[[Any, int], None]

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            for key in stale:
                self.note_stale_trial(self, key)
            return stale

    return NotingRDBStorage


# wandb-workspaces --------------------------------------------------------------------------------
def workspace_view(workspace: Any) -> dict[str, Any]:
    """The view a ``wandb_workspaces`` ``Workspace`` saves to W&B (what ``Workspace.save`` sends), as JSON
    data: panel types and the metric and config keys they plot, without the network."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


# torch -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def distribution_validation(enabled: bool) -> Iterator[None]:
    """Set ``torch.distributions``' default argument validation inside the context, restoring it after
    (vmap forbids the data-dependent branches of argument checks)."""
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(enabled)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX tiles), as torch's cpuinfo reads them."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


__all__ = [
    "attached_trainer",
    "cpu_has_native_bf16",
    "distribution_validation",
    "heartbeat",
    "logger_writes_this_step",
    "logging_step",
    "rdb_storage_noting_stale_trials",
    "study_storage",
    "trial_id",
    "uncounted_optimizer_steps",
    "wandb_init_arguments",
    "workspace_view",
]

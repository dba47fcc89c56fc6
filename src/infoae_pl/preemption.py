"""SIGTERM, what SLURM sends before it pre-empts a job: save what was computed, stop within seconds, say so in one line.

Lightning handles SIGTERM itself during a fit (its signal connector, on any machine, SLURM or not): it
sets ``trainer.received_sigterm`` and its loops raise ``SIGTERMException`` after the current batch,
a ``SystemExit`` with status 0 that saves nothing. This module builds on that:

* :class:`SaveOnSigterm` saves a full checkpoint (weights, optimiser, loops, callbacks) when that
  exception passes through the fit;
* :func:`check` lets a long callback (an evaluation over many models) stop between pieces of work;
* :func:`stop_on_sigterm` wraps a command: SIGTERM outside a fit stops it at once too (within a fit
  Lightning's handler wraps this one and the loops stop), and both end in :class:`Preempted`, which
  prints one line and exits with status 143 (128 + SIGTERM), so a scheduler sees the job did not finish;
* :func:`remember_preempted` and :func:`preempted_checkpoint` let ``infoae fit`` find, from the same
  command, the checkpoint its pre-empted run left (``.infoae-preempted/`` in the working directory,
  keyed by a fingerprint of the resolved config; the entry is removed when a run of it completes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_CODE = 128 + signal.SIGTERM
#: The ``fail_reason`` of a sweep trial stopped by SIGTERM (it is retried from its checkpoint).
REASON = "pre-empted (SIGTERM)"
#: Folder of the working directory where ``infoae fit`` remembers its pre-empted runs.
MARKERS = ".infoae-preempted"
CHECKPOINT_NAME = "preempted.ckpt"

_received = False  # SIGTERM arrived (while a stop_on_sigterm context was active)
_depth = 0  # nesting of stop_on_sigterm contexts: the outermost one prints the message
_last_save: dict[str, Any] = {}  # what SaveOnSigterm last wrote, as Preempted's keyword arguments


class Preempted(SIGTERMException):
    """SIGTERM stopped the work after what it had computed was saved; exits with status 143 unless caught.

    ``message`` is the line printed for the user; ``checkpoint`` and ``step`` say what was saved;
    ``wandb_run_id`` is the W&B run a resumed sweep trial continues."""

    def __init__(self, message: str = REASON, checkpoint: Path | None = None, step: int | None = None,
                 wandb_run_id: str | None = None) -> None:
        super().__init__(EXIT_CODE)
        self.message, self.checkpoint, self.step, self.wandb_run_id = message, checkpoint, step, wandb_run_id


class _DropLightningNotice(logging.Filter):
    """Lightning logs "Received SIGTERM" at info level; the command's own line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Received SIGTERM" not in record.getMessage()


logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").addFilter(_DropLightningNotice())


def check(trainer: Trainer) -> None:
    """Raise Lightning's ``SIGTERMException`` if SIGTERM arrived during this fit: long callbacks call it
    between pieces of work, so that the fit stops within seconds rather than after the callback."""
    if trainer.received_sigterm:
        raise SIGTERMException()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Stop at once, unless a Lightning fit is running: its handler calls this one after setting
    ``trainer.received_sigterm``, and its loops stop after the current batch. A second SIGTERM while
    the first one's work is being saved changes nothing."""
    global _received
    first, _received = not _received, True
    if first and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        raise Preempted()


@contextlib.contextmanager
def stop_on_sigterm(prog: str, hint: str = "") -> Iterator[None]:
    """Run a command so that SIGTERM saves (through the fit's :class:`SaveOnSigterm`), stops it within
    seconds and exits with one line on stderr and status 143. ``hint`` ends the line (how to resume)."""
    global _depth, _last_save, _received
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if main_thread and _depth == 0:
        _received, _last_save = False, {}
        signal.signal(signal.SIGTERM, _on_sigterm)
    _depth += 1
    try:
        yield
    except SIGTERMException as stop:
        preempted = stop if isinstance(stop, Preempted) else Preempted(**_last_save)
        if _depth == 1:
            print(f"{prog}: {preempted.message}" + (f"; {hint}" if hint else ""), file=sys.stderr, flush=True)
        if preempted is stop:
            raise
        raise preempted from stop
    finally:
        _depth -= 1
        if main_thread and _depth == 0 and previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def forward_sigterm(processes: list[Any]) -> Iterator[None]:
    """Inside: SIGTERM to this process is passed on to those of ``processes`` (``multiprocessing``
    processes) still running, which save and stop themselves while this one waits for them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class SaveOnSigterm(Callback):
    """Save a full checkpoint when SIGTERM stops the fit (Lightning's ``SIGTERMException``), to ``path``
    or else ``preempted.ckpt`` beside the run's checkpoints. ``note``: (folder, config fingerprint) under
    which :func:`remember_preempted` notes it. ``saved``: (path, global step) once saved."""

    def __init__(self, path: str | Path | None = None, note: tuple[str | Path, str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.note = note
        self.saved: tuple[Path, int] | None = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit" or trainer.global_step == 0:
            return  # nothing trained (or restored) yet: nothing to save
        path = self.path or checkpoint_dir(trainer) / CHECKPOINT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        with resumable_epoch_progress(trainer):
            trainer.save_checkpoint(path, weights_only=False)
        self.saved = (path, trainer.global_step)
        if self.note is not None:
            remember_preempted(*self.note, path, trainer.global_step)
        _last_save.update({"message": f"pre-empted (SIGTERM) at step {trainer.global_step}; saved {path}",
                           "checkpoint": path, "step": trainer.global_step})


@contextlib.contextmanager
def resumable_epoch_progress(trainer: Trainer) -> Iterator[None]:
    """Lightning stops for SIGTERM at an epoch's end after counting the epoch completed; resumed from that
    state a step-limited fit runs an empty extra epoch (its epoch numbers then run one ahead). Inside, a just
    completed epoch counts as processed only, as in the checkpoint ``ModelCheckpoint`` saves at that point,
    which Lightning resumes by finishing that epoch's end and going on with the next one."""
    progress = trainer.fit_loop.epoch_progress
    at_boundary = progress.current.completed == progress.current.ready and progress.total.completed > 0
    if at_boundary:
        progress.current.completed -= 1
        progress.total.completed -= 1
    try:
        yield
    finally:
        if at_boundary:
            progress.current.completed += 1
            progress.total.completed += 1


def checkpoint_dir(trainer: Trainer) -> Path:
    """Where the run's checkpoints go: its ``ModelCheckpoint``'s folder, else ``checkpoints/`` in its log folder."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath)
    return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"


# Sweep trials: the retry resumes -------------------------------------------------------------------
#: User attributes of a sweep trial that runs a pre-empted one again: the checkpoint it resumes from
#: (relative to the study's output folder) and the W&B run it continues.
RESUME_ATTR, WANDB_ATTR = "resume_checkpoint", "wandb_run_id"


def resume_attrs(stop: Preempted, output_dir: Path) -> dict[str, str]:
    """What the retry of a trial stopped by ``stop`` needs to resume it (:data:`RESUME_ATTR`, :data:`WANDB_ATTR`)."""
    attrs = {}
    if stop.checkpoint is not None:
        checkpoint = Path(stop.checkpoint).resolve()
        with contextlib.suppress(ValueError):  # outside the output folder: keep it absolute
            checkpoint = checkpoint.relative_to(Path(output_dir).resolve())
        attrs[RESUME_ATTR] = str(checkpoint)
    if stop.wandb_run_id:
        attrs[WANDB_ATTR] = stop.wandb_run_id
    return attrs


def resume_checkpoint(user_attrs: dict[str, Any], output_dir: Path) -> Path | None:
    """The checkpoint a retried trial resumes from, if it names one and it is there (else it starts afresh)."""
    if RESUME_ATTR not in user_attrs:
        return None
    checkpoint = Path(output_dir) / user_attrs[RESUME_ATTR]
    if not checkpoint.is_file():
        print(f"[sweep] {checkpoint} is gone: the trial starts from the beginning", file=sys.stderr, flush=True)
        return None
    return checkpoint


# infoae fit: the same command resumes ---------------------------------------------------------------
def fingerprint(config: dict[str, Any]) -> str:
    """A run config's identity: its resolved values (the checkpoint it starts from included) except
    the config files' names and the CPU threads, neither of which changes what the run computes."""
    kept = {k: v for k, v in config.items() if k not in ("config", "threads")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _marker(root: str | Path, key: str) -> Path:
    return Path(root) / MARKERS / f"{key}.json"


def remember_preempted(root: str | Path, key: str, checkpoint: Path, step: int) -> None:
    """Note that the run of config ``key`` was pre-empted at ``step`` and saved ``checkpoint``."""
    marker = _marker(root, key)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"checkpoint": str(Path(checkpoint).resolve()), "step": step}))


def preempted_checkpoint(root: str | Path, key: str) -> tuple[Path, int] | None:
    """The checkpoint and step a pre-empted run of config ``key`` left, if it is still there."""
    marker = _marker(root, key)
    if not marker.is_file():
        return None
    note = json.loads(marker.read_text())
    checkpoint = Path(note["checkpoint"])
    return (checkpoint, int(note["step"])) if checkpoint.is_file() else None


def forget_preempted(root: str | Path, key: str) -> None:
    """Drop the note of config ``key`` (its run completed), and the notes' folder once empty."""
    marker = _marker(root, key)
    marker.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        marker.parent.rmdir()


__all__ = [
    "CHECKPOINT_NAME",
    "EXIT_CODE",
    "REASON",
    "RESUME_ATTR",
    "WANDB_ATTR",
    "Preempted",
    "SaveOnSigterm",
    "check",
    "checkpoint_dir",
    "fingerprint",
    "forget_preempted",
    "forward_sigterm",
    "preempted_checkpoint",
    "remember_preempted",
    "resumable_epoch_progress",
    "resume_attrs",
    "resume_checkpoint",
    "stop_on_sigterm",
]

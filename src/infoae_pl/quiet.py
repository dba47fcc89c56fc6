"""Quiet by default: what the user reads is this package's output, not its libraries' chatter.

Silenced, at the ``infoae`` entry point and in each LightningCLI (so also in spawned sweep workers):
W&B's banner and run summary (``WANDB_SILENT``; the run folders are still reported by ``infoae`` and
the sweep), Lightning's "💡 Tip" advertisements, and warnings that are known, harmless and not the
user's to fix. Each stays available: ``WANDB_SILENT=false``, ``JSONARGPARSE_DEPRECATION_WARNINGS=all``
and ``-W``/``PYTHONWARNINGS`` set by the user win, and the filters match these messages only.

This module imports no library, so the ``infoae`` entry point can use it before any heavy import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

#: Lightning's advertisement lines (``rank_zero_info``), printed on every run.
TIP_PREFIX = "💡 Tip:"
#: The loggers ``rank_zero_info`` writes to (lightning.pytorch's replaces fabric's once it is imported).
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
#: (category, message regex) of warnings that are known and harmless here.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # Lightning 2.6's _pytree uses an API that torch 2.13 deprecates; nothing a user can change.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # The toy datasets are IterableDatasets with a length; each DataLoader worker draws its own share of
    # the steps (infoae_pl.data.toy.MixtureStream), which is what Lightning warns may not be the case.
    (UserWarning, r"Your `IterableDataset` has `__len__` defined"),
)

#: Known and harmless only when a command evaluates a checkpoint (validate, test): Lightning's notice that the
#: checkpoint callback's folder differs from the one the checkpoint was saved with; such a run saves none.
EVALUATION_WARNINGS: tuple[tuple[type[Warning], str], ...] = ((Warning, r"The dirpath has changed from"),)


class _DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip" advertisements; every other info line passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


def quiet_third_party() -> None:
    """Silence the libraries' known noise in this process (and, through the environment, in processes it
    starts); idempotent. Settings the user made explicitly are kept."""
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTips) for f in logger.filters):
            logger.addFilter(_DropTips())
    if not sys.warnoptions:  # a user who set -W or PYTHONWARNINGS gets exactly what they asked for
        for category, message in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)


@contextlib.contextmanager
def lightning_info_silenced() -> Iterator[None]:
    """Inside the context, Lightning prints warnings and errors only, not its info lines (seed, devices,
    "fit stopped"): a sweep trial reports itself in one line of its own."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class QuietCLI:
    """A LightningCLI mixin (listed before ``LightningCLI``): :func:`quiet_third_party` when the CLI is
    built, and :class:`~infoae_pl.readable_output.ReadableOutput` on its trainer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        quiet_third_party()
        super().__init__(*args, **kwargs)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        from infoae_pl.readable_output import ReadableOutput

        trainer = super().instantiate_trainer(**kwargs)  # type: ignore[misc]
        trainer.callbacks.append(ReadableOutput())
        if getattr(self, "subcommand", None) in ("validate", "test") and not sys.warnoptions:
            for category, message in EVALUATION_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
        return trainer


__all__ = ["EVALUATION_WARNINGS", "KNOWN_WARNINGS", "QuietCLI", "lightning_info_silenced", "quiet_third_party"]

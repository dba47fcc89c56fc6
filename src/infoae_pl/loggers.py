"""Loggers with the project's defaults: W&B offline unless the user asks for online."""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger

WANDB_MODES = ("offline", "online", "disabled")


class WandbOfflineLogger(WandbLogger):
    """A ``WandbLogger`` whose mode is ``WANDB_MODE`` when set, else ``offline``: nothing needs the network.

    Offline run files land in ``save_dir/wandb/offline-run-*``; upload them later with ``wandb sync``.
    W&B prints nothing (no banner, no run summary: ``infoae`` says where the run went) unless
    ``WANDB_SILENT=false``.
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

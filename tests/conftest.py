"""Shared test set-up: deterministic, offline, two threads, W&B and Lightning files inside tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder with W&B's folders inside it and a fixed seed."""
    monkeypatch.chdir(tmp_path)
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        path = tmp_path / var.lower()
        path.mkdir(exist_ok=True)
        monkeypatch.setenv(var, str(path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    # W&B sets WANDB_SERVICE once this process has used it; a child process would then log through this
    # process's service, which resolves relative run folders against another test's folder.
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    torch.manual_seed(0)
    yield


@pytest.fixture
def tiny_mog_fit() -> list[str]:
    """``infoae fit`` of the 1-D mixture beta-ELBO config made tiny (8 hidden units, 100 held-out points, a
    coarse quadrature grid); the test adds the steps and validation cadence it needs."""
    config = Path(__file__).resolve().parents[1] / "configs" / "beta_elbo_mog1d.yaml"
    return ["fit", "--config", str(config), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.callbacks.init_args.quadrature_grid_size", "101",
            "--data.val_size", "100", "--data.test_size", "100", "--model.init_args.hidden_dim", "8"]

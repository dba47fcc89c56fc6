"""Shared test set-up: deterministic, offline, two threads, W&B and Lightning files inside tmp_path."""

from __future__ import annotations

import os

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

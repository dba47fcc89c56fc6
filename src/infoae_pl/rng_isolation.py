"""Validation during training that leaves the training's random streams as it found them.

Validating draws random numbers: the validation DataLoader's iterator takes a seed from torch's global
generator, models sample z, the evaluation callback samples the prior. Without isolation a run's training
after its first validation depends on how often it validates, so watching a run more closely trains
another model: the conv InfoGAN on the MNIST sample, seed 0, 4,500 steps, scored a real-image code
accuracy of 0.886 validated every 500 steps and 0.710 validated only at its end.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def rng_states() -> dict[str, Any]:
    """The states of every generator a run draws from: torch's CPU and CUDA ones, NumPy's and Python's."""
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


class IsolatedValidationRng(Callback):
    """Restores the random states after each validation inside ``fit`` to those after the last training
    batch, so a run trains the same model however often it validates (``val_check_interval``,
    ``check_val_every_n_epoch``, ``limit_val_batches``).

    The states are taken after every training batch, since Lightning builds the validation iterator
    (one draw) before any validation hook runs; that costs some microseconds a step. The sanity check
    before the first step is left as it is: it runs the same way on every run of a config.
    """

    def __init__(self) -> None:
        self._states: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._states = rng_states()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._states is not None and not trainer.sanity_checking:
            set_rng_states(self._states)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._states = None

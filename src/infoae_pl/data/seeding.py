"""Seeded randomness for data pipelines that stays reproducible and distinct across DataLoader workers."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one named use of ``seed`` (e.g. "split", "train-shuffle")."""
    state = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(purpose.encode()),)).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0] >> np.uint64(1))


class WorkerAwareGenerator:
    """A ``torch.Generator`` seeded from ``seed`` in the main process, and from the worker's own seed
    inside a DataLoader worker (which the loader draws from its generator), so workers differ."""

    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)
        self._in_worker = False

    def get(self) -> torch.Generator:
        """The generator to draw from in the current process."""
        info = torch.utils.data.get_worker_info()
        if info is not None and not self._in_worker:
            self._generator = torch.Generator().manual_seed(info.seed)
            self._in_worker = True
        return self._generator

"""Whole-batch indexing and collation: one tensor gather and one ``torch.bernoulli`` call per batch."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from infoae_pl.data.seeding import WorkerAwareGenerator


class TensorPairs(Dataset):
    """Examples ``(values[i], labels[i])`` that a DataLoader fetches a whole batch at a time."""

    def __init__(self, values: Tensor, labels: Tensor) -> None:
        if len(values) != len(labels):
            raise ValueError(f"{len(values)} examples but {len(labels)} labels")
        self.values = values
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.values[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.values[index], self.labels[index]


class CollateBatch:
    """Turn a fetched batch into float32 ``x = values * scale`` (flattened to ``[B, -1]``) and int64 ``y``;
    with ``dynamic`` set, x is replaced by a fresh Bernoulli draw with those probabilities."""

    def __init__(self, *, scale: float = 1.0, dynamic: bool = False, seed: int = 0) -> None:
        self.scale = scale
        self.dynamic = dynamic
        self._rng = WorkerAwareGenerator(seed)

    def __call__(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        values, labels = batch
        x = values.reshape(len(values), -1).to(torch.float32)
        if self.scale != 1.0:
            x = x * self.scale
        if self.dynamic:
            x = torch.bernoulli(x, generator=self._rng.get())
        return x, labels.to(torch.int64)

"""Data: one LightningDataModule (``InfoAEDataModule``) for the toy mixtures and the MNIST-family images."""

from infoae_pl.data.datamodule import BINARIZE_MODES, DATASETS, InfoAEDataModule, default_data_dir
from infoae_pl.data.idx import read_idx, write_idx
from infoae_pl.data.toy import GaussianMixture, MixtureStream, mog1d, ring8

__all__ = [
    "BINARIZE_MODES",
    "DATASETS",
    "GaussianMixture",
    "InfoAEDataModule",
    "MixtureStream",
    "default_data_dir",
    "mog1d",
    "read_idx",
    "ring8",
    "write_idx",
]

"""The example configs and studies that ship inside the package: ``infoae_pl/configs/`` and ``infoae_pl/sweeps/``.

An installed package (``pip install .`` or a wheel) carries them as package data and they are found
here through :mod:`importlib.resources`, whatever the working directory. In a checkout, ``configs/``
and ``sweeps/`` at the repository root are relative symlinks to these two folders, so the README's
``infoae fit --config configs/….yaml`` and ``infoae sweep sweeps/….yaml`` run from the root. A shipped
study names its base config relative to its own folder (``base_config: ../configs/….yaml``), which is
the same file through the symlink, in the source tree and in an installed package.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONFIGS = "configs"
SWEEPS = "sweeps"


def shipped_dir(name: str) -> Path:
    """The package's ``configs`` or ``sweeps`` folder as a file-system path."""
    if name not in (CONFIGS, SWEEPS):
        raise ValueError(f"no shipped folder {name!r}; choose {CONFIGS!r} or {SWEEPS!r}")
    folder = files("infoae_pl").joinpath(name)
    if not isinstance(folder, Path) or not folder.is_dir():
        raise FileNotFoundError(f"infoae_pl/{name}/ is missing from the installed package ({folder}); "
                                "reinstall infoae-pl from a complete source tree or wheel")
    return folder


def shipped_config(name: str) -> Path:
    """A shipped example config, e.g. ``shipped_config("fig2_infovae_mnist5k.yaml")``."""
    return _shipped_file(CONFIGS, name)


def shipped_study(name: str) -> Path:
    """A shipped study file, e.g. ``shipped_study("infovae_lambda_beta.yaml")``."""
    return _shipped_file(SWEEPS, name)


def _shipped_file(folder: str, name: str) -> Path:
    path = shipped_dir(folder) / name
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in shipped_dir(folder).glob("*.yaml")))
        raise FileNotFoundError(f"no shipped {folder}/{name}; available: {available}")
    return path

"""The package as a user installs it: configs and studies are package data, and a non-editable install
(a wheel built from this source tree, in a fresh virtual environment) runs the reproductions from an
empty folder, with nothing read from the source tree."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from infoae_pl.shipped import CONFIGS, SWEEPS, shipped_dir
from infoae_pl.tuning.spec import load_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", [CONFIGS, SWEEPS])
def test_the_repository_folders_are_relative_symlinks_into_the_package(folder):
    link = ROOT / folder
    assert link.is_symlink() and os.readlink(link) == f"src/infoae_pl/{folder}"
    assert link.resolve() == shipped_dir(folder).resolve()


@pytest.mark.parametrize("study", sorted(p.name for p in shipped_dir(SWEEPS).glob("*.yaml")))
def test_every_shipped_study_finds_its_base_config_from_the_repository_and_the_package(study):
    """``base_config: ../configs/….yaml`` is relative to the study file: through the repository's
    ``sweeps`` symlink (the README's ``infoae sweep sweeps/….yaml``) it is the package's config too."""
    assert load_study(ROOT / SWEEPS / study).run_config == load_study(shipped_dir(SWEEPS) / study).run_config


def _dependency_dirs() -> list[str]:
    """The running interpreter's site-packages: the dependencies (and pip), not the source tree."""
    paths = sysconfig.get_paths()
    dirs = {paths["purelib"], paths["platlib"], *site.getsitepackages()}
    return sorted(d for d in dirs if Path(d).is_dir() and Path(d).resolve() != (ROOT / "src").resolve())


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_reproduces_from_an_empty_folder(tmp_path):
    """Build a wheel from a copy of the sources, install it (no dependencies) into a new venv that sees
    the current interpreter's site-packages through a plain path in a .pth file, so that the editable
    install's own .pth (which points at src/) is never processed; then run both reproductions."""
    pytest.importorskip("setuptools")
    source, wheels, venv, work = (tmp_path / name for name in ("source", "wheels", "venv", "work"))
    source.mkdir()
    work.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = ["-m", "pip", "-q"]
    _run([sys.executable, *pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels), str(source)],
         tmp_path, env)
    (wheel,) = wheels.glob("infoae_pl-*.whl")

    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env).strip())
    (purelib / "_infoae_test_dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")
    _run([str(python), *pip, "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], work, env)

    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(python), "-c", "import os, sys, infoae_pl; from infoae_pl.shipped import shipped_study; "
                  "print(infoae_pl.__file__); print(shipped_study('infovae_lambda_beta.yaml')); "
                  "print(any(os.path.realpath(p or '.') == os.path.realpath(sys.argv[1]) for p in sys.path))",
                  str(ROOT / "src")], work, env).splitlines()
    assert Path(where[0]).is_relative_to(purelib) and Path(where[1]).is_relative_to(purelib), where
    assert where[2] == "False", "the source tree is on the new venv's sys.path"

    infoae = str(venv / "bin" / "infoae")
    _run([infoae, "reproduce", "fig2", "--profile", "tiny"], work, env, timeout=300)
    _run([infoae, "reproduce", "fig1", "--profile", "tiny", "--no-progress"], work, env, timeout=300)
    for name in ("fig2.png", "results.csv", "checks.json"):
        assert (work / "reproduce" / "fig2" / name).stat().st_size > 0
    assert (work / "reproduce" / "fig1" / "fig1.png").stat().st_size > 0
    assert len((work / "reproduce" / "fig2" / "results.csv").read_text().splitlines()) == 13  # header + 4 trials × 3 estimators

"""Tiny studies for the sweep tests: a 16-unit β-VAE on the 1-D mixture, a few steps per trial."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

BASE_CONFIG = {
    "seed_everything": 0,
    "model": {
        "class_path": "infoae_pl.models.BetaELBO",
        "init_args": {"beta": 1.0, "latent_dim": 1, "likelihood": "gaussian", "hidden_dim": 16, "lr": 0.003},
    },
    "data": {"dataset": "mog1d", "batch_size": 100, "steps_per_epoch": 5, "val_size": 200, "test_size": 200},
    "trainer": {
        "max_steps": 10,
        "log_every_n_steps": 5,
        "enable_checkpointing": True,
        "callbacks": [{
            "class_path": "infoae_pl.evaluation.EvaluationCallback",
            "init_args": {"nll_estimator": "quadrature", "quadrature_grid_size": 501,
                          "quadrature_z_range": [-7.0, 7.0], "mi_max_examples": 100},
        }],
    },
}
POSTGRES_ENV = "INFOAE_TEST_POSTGRES_URL"
REQUIRE_ENV = "INFOAE_REQUIRE_POSTGRES"


@pytest.fixture
def write_study(tmp_path):
    """Write a base config and a study YAML into tmp_path; returns the study's path."""

    def write(name: str = "tiny", base: dict | None = None, **study) -> Path:
        base_path = tmp_path / f"{name}_base.yaml"
        base_path.write_text(yaml.safe_dump(base or BASE_CONFIG))
        raw = {
            "study_name": name,
            "base_config": base_path.name,
            "search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 5.0, "log": True}},
            "objectives": [{"metric": "val/nll", "direction": "minimize"}],
            "sampler": {"name": "random", "seed": 0},
            "n_trials": 2,
            "output_dir": str(tmp_path / "sweeps" / name),
            **study,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture
def postgres_url():
    """A PostgreSQL URL from INFOAE_TEST_POSTGRES_URL (set by .ci/run, which starts a real server)."""
    # .ci/run sets INFOAE_REQUIRE_POSTGRES: there a missing or broken server fails instead of skipping.
    unavailable = pytest.fail if os.environ.get(REQUIRE_ENV) else pytest.skip
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        unavailable(f"no PostgreSQL server configured: set {POSTGRES_ENV} (as .ci/run does)")
    import sqlalchemy

    from infoae_pl.tuning.storage import _driver_url

    try:
        sqlalchemy.create_engine(_driver_url(url)).connect().close()
    except Exception as error:  # any failure to connect: skip (or fail in CI), with its reason
        unavailable(f"PostgreSQL at {POSTGRES_ENV} is not reachable: {type(error).__name__}")
    return url


@pytest.fixture
def unique_name():
    """Study names that never collide in a shared database."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:8]}"

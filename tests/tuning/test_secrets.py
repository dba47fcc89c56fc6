"""No database password in any file, log line or W&B record of a sweep, however its URL is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
from optuna.trial import TrialState

from infoae_pl.tuning import load_study, open_study
from infoae_pl.tuning.credentials import redact
from infoae_pl.tuning.spec import StudySpecError
from infoae_pl.tuning.storage import _driver_url, storage_url

SECRET_ENV = "INFOAE_TEST_POSTGRES_SECRET_URL"


@pytest.fixture
def secret_url() -> str:
    """A PostgreSQL URL whose password appears nowhere else (``.ci/run`` creates its role and database)."""
    unavailable = pytest.fail if os.environ.get("INFOAE_REQUIRE_POSTGRES") else pytest.skip
    url = os.environ.get(SECRET_ENV)
    if not url:
        unavailable(f"no PostgreSQL role with a distinctive password: set {SECRET_ENV} (as .ci/run does)")
    password = sqlalchemy.make_url(url).password
    if not password or len(password) < 8:
        unavailable(f"{SECRET_ENV} needs a password of 8 characters or more, found nowhere else")
    try:
        sqlalchemy.create_engine(_driver_url(url)).connect().close()
    except Exception as error:
        unavailable(f"PostgreSQL at {SECRET_ENV} is not reachable: {type(error).__name__}")
    return url


def _sweep(study: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``infoae sweep STUDY ARGS`` as a user runs it: its own process, its real command line."""
    return subprocess.run([sys.executable, "-m", "infoae_pl.cli", "sweep", str(study), *args],
                          env={**os.environ, **env}, capture_output=True, timeout=600)


def _holding(root: Path, secret: bytes, but: tuple[Path, ...] = ()) -> list[str]:
    """Every file under ``root`` (but ``but``) whose bytes contain ``secret``."""
    return [str(p) for p in root.rglob("*") if p.is_file() and p not in but and secret in p.read_bytes()]


def _check_nothing_holds_the_password(tmp_path: Path, url: str, result: subprocess.CompletedProcess,
                                      study: Path, written_by_user: tuple[Path, ...] = ()) -> None:
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    password = sqlalchemy.make_url(url).password.encode()
    spec = load_study(study, storage=url)
    trials = open_study(spec).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # the sweep really used the database
    runs = list(spec.output_dir.glob("trial-*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2  # the W&B records searched below exist
    assert password not in result.stdout and password not in result.stderr
    assert redact(url).encode() in result.stdout  # the URL is shown, its password masked
    assert _holding(tmp_path, password, but=written_by_user) == []


@pytest.mark.postgres
def test_a_password_given_with_storage_reaches_no_file_and_no_wandb_record(write_study, secret_url, unique_name,
                                                                           tmp_path):
    study = write_study(name=unique_name("secret_flag"))
    result = _sweep(study, "--storage", secret_url, "--workers", "2")
    _check_nothing_holds_the_password(tmp_path, secret_url, result, study)
    spec = load_study(study)
    (summary,) = spec.output_dir.glob("wandb/offline-run-*/run-*.wandb")  # the study's summary run
    recorded = [p.read_bytes() for p in [summary, *spec.output_dir.glob("trial-*/wandb/*/run-*.wandb")]]
    # W&B recorded the command line of the sweep and of both spawned workers, with the password masked.
    assert all(redact(secret_url).encode() in record for record in recorded)
    assert b"--storage env:INFOAE_STORAGE" in result.stderr  # the warning says how to keep it out of `ps`


@pytest.mark.postgres
def test_a_password_in_the_study_file_reaches_no_other_file(write_study, secret_url, unique_name, tmp_path):
    study = write_study(name=unique_name("secret_yaml"), storage=secret_url)
    result = _sweep(study, "--no-report")
    _check_nothing_holds_the_password(tmp_path, secret_url, result, study, written_by_user=(study,))


@pytest.mark.postgres
def test_a_url_from_the_environment_reaches_no_file_and_no_command_line(write_study, secret_url, unique_name,
                                                                       tmp_path):
    study = write_study(name=unique_name("secret_env"))
    result = _sweep(study, "--storage", "env:INFOAE_STORAGE", "--no-report", INFOAE_STORAGE=secret_url)
    _check_nothing_holds_the_password(tmp_path, secret_url, result, study)
    assert b"password on the command line" not in result.stderr  # nothing to warn about


def test_an_unset_environment_variable_is_named_before_any_work(write_study, monkeypatch):
    monkeypatch.delenv("INFOAE_NOWHERE", raising=False)
    spec = load_study(write_study(), storage="env:INFOAE_NOWHERE")
    with pytest.raises(StudySpecError, match="'INFOAE_NOWHERE' is not set"):
        storage_url(spec)


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
    ("--storage=postgresql+psycopg2://u:p:w@h:5432/db", "--storage=postgresql+psycopg2://u:***@h:5432/db"),
    ("postgresql://h/db?user=u&password=pw&sslmode=require", "postgresql://h/db?user=u&password=***&sslmode=require"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("runs/sweeps/s/study.journal", "runs/sweeps/s/study.journal"),
])
def test_redact_masks_every_password_form_and_nothing_else(text, shown):
    assert redact(text) == shown

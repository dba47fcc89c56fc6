"""Ctrl-C and database outages during a real `infoae sweep`: one line, an exit status, nothing lost."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from infoae_pl.tuning import load_study, open_study
from infoae_pl.tuning.asktell import counted

INTERRUPTED = "infoae sweep: interrupted: re-run the same command to resume"


class Sweep:
    """`infoae sweep` in a process group of its own (as a terminal runs it), its output lines timed."""

    def __init__(self, path: Path, *options: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "infoae_pl.cli", "sweep", str(path), "--no-report", *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, condition, spec, seconds: float = 300) -> list[optuna.trial.FrozenTrial]:
        """Poll the study until ``condition(trials)``; fail (and kill the sweep) after ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.3)
            try:
                trials = open_study(spec).get_trials()
            except (KeyError, ValueError, optuna.exceptions.StorageInternalError):
                continue  # not created yet, or the database is down
            if condition(trials):
                return trials
        self.kill()
        pytest.fail(f"the sweep never got there; its output:\n{self.output()}")

    def finish(self, seconds: float = 300) -> int:
        try:
            code = self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the sweep did not end; its output:\n{self.output()}")
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self, since: float = 0.0) -> str:
        return "\n".join(line for at, line in self.lines if at > since)


def training(count: int):
    """``count`` trials are running and have validated once (they report to the pruner): past their start-up."""
    return lambda trials: sum(t.state == TrialState.RUNNING and bool(t.intermediate_values) for t in trials) >= count


#: A pruner that prunes nothing here but makes each validation visible in the study.
REPORTING = {"name": "median", "n_startup_trials": 5}


@pytest.mark.parametrize(("workers", "to_group"), [(2, True), (2, False), (1, True)],
                         ids=["2-workers-terminal", "2-workers-kill-INT-parent", "1-worker-terminal"])
def test_ctrl_c_ends_with_one_line_and_exit_130_and_a_rerun_resumes(write_study, workers, to_group):
    """``to_group``: SIGINT to the whole process group, as a terminal's Ctrl-C; else to the parent alone."""
    path = write_study(n_trials=workers, config={"trainer.max_steps": 300}, pruner=REPORTING)
    spec = load_study(path)
    sweep = Sweep(path, "--workers", str(workers))
    sweep.wait_for(training(workers), spec)
    sent = time.monotonic()
    if to_group:
        os.killpg(sweep.process.pid, signal.SIGINT)
    else:
        sweep.process.send_signal(signal.SIGINT)
    assert sweep.finish() == 130
    assert sweep.output(since=sent).splitlines() == [INTERRUPTED], sweep.output()
    assert "Traceback" not in sweep.output()
    trials = open_study(spec).get_trials()
    assert not any(Path(f"/proc/{t.user_attrs['worker_pid']}").exists() for t in trials if "worker_pid" in t.user_attrs)
    # Each running trial was interrupted, unless it finished its training as the signal came (then it completed).
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert interrupted and len(interrupted) + sum(t.state == TrialState.COMPLETE for t in trials) == workers, \
        [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert all(t.user_attrs["fail_reason"] == "interrupted (Ctrl-C)" for t in interrupted)
    retries = {t.user_attrs["retry_of"]: t for t in trials if t.state == TrialState.WAITING}
    assert {n: t.system_attrs["fixed_params"] for n, t in retries.items()} == {t.number: t.params for t in interrupted}
    if workers == 2 and to_group:  # the same command again: the interrupted trials run, nothing else
        again = Sweep(path, "--workers", str(workers))
        assert again.finish() == 0, again.output()
        trials = open_study(spec).get_trials()
        assert [t.state for t in counted(trials)] == [TrialState.COMPLETE] * workers
        assert {t.user_attrs.get("retry_of") for t in counted(trials)} >= set(retries)


# A real PostgreSQL server, stopped and started again while a sweep runs ----------------------------------------
def _cluster(url: str) -> tuple[list[str], str, str, bool]:
    """The command prefix, version, name and whether online of the local PostgreSQL cluster on ``url``'s port."""
    from sqlalchemy.engine import make_url

    port = make_url(url).port or 5432
    if shutil.which("pg_lsclusters") is None or shutil.which("pg_ctlcluster") is None:
        pytest.skip("stopping the PostgreSQL server needs pg_lsclusters and pg_ctlcluster (postgresql-common)")
    for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.splitlines():
        version, name, cluster_port, status, *_ = line.split()
        if int(cluster_port) == port:
            prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
            return prefix, version, name, status == "online"
    pytest.skip(f"no local PostgreSQL cluster on port {port} (INFOAE_TEST_POSTGRES_URL) to stop and start")


def _pg_ctl(url: str, action: str) -> None:
    prefix, version, name, online = _cluster(url)
    if online == (action == "start"):
        return
    command = [*prefix, "pg_ctlcluster", "--skip-systemctl-redirect", version, name, action]
    if action == "stop":
        command += ["-m", "fast"]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
def stoppable_postgres(postgres_url):
    """``postgres_url``, whose server the test may stop (and which runs again when the test ends)."""
    _cluster(postgres_url)
    yield postgres_url
    _pg_ctl(postgres_url, "start")


def _pg_study(write_study, unique_name, url, **study):
    path = write_study(name=unique_name("pg_outage"), storage=url, n_trials=2, config={"trainer.max_steps": 300},
                       pruner=REPORTING, **study)  # each validation writes to the database
    return path, load_study(path)


@pytest.mark.postgres
def test_a_database_outage_during_a_sweep_is_waited_out(write_study, stoppable_postgres, unique_name):
    path, spec = _pg_study(write_study, unique_name, stoppable_postgres)
    sweep = Sweep(path, "--workers", "2", "--db-retry-seconds", "120")
    sweep.wait_for(training(2), spec)
    _pg_ctl(stoppable_postgres, "stop")
    time.sleep(15)  # both workers train on, reporting to a database that does not answer
    _pg_ctl(stoppable_postgres, "start")
    assert sweep.finish() == 0, sweep.output()
    assert "Traceback" not in sweep.output()
    assert [t.state for t in open_study(spec).get_trials()] == [TrialState.COMPLETE] * 2


@pytest.mark.postgres
def test_a_database_outage_longer_than_the_retry_time_ends_with_one_line_and_exit_75(
        write_study, stoppable_postgres, unique_name):
    # The workers give up with their trials RUNNING: a short grace period lets the re-run retry them soon.
    path, spec = _pg_study(write_study, unique_name, stoppable_postgres,
                           heartbeat={"interval": 1, "grace_period": 3, "max_retry": 2})
    sweep = Sweep(path, "--workers", "2", "--db-retry-seconds", "5")
    sweep.wait_for(training(2), spec)
    _pg_ctl(stoppable_postgres, "stop")
    stopped = time.monotonic()
    code = sweep.finish()
    _pg_ctl(stoppable_postgres, "start")
    assert code == 75, sweep.output()
    lines = sweep.output(since=stopped).splitlines()
    assert len(lines) == 1, sweep.output()
    line = lines[0]
    assert re.fullmatch(r"infoae sweep: the database postgresql://[^:]*:\*\*\*@.* did not answer for 5 s "
                        r"\(--db-retry-seconds\); re-run the same command to resume once it answers", line), line
    assert "Traceback" not in sweep.output()
    again = Sweep(path, "--workers", "2")  # the same command once the database is back
    assert again.finish() == 0, again.output()
    assert [t.state for t in counted(open_study(spec).get_trials())] == [TrialState.COMPLETE] * 2

"""`infoae sweep dashboard`: a study's page rendered by a real browser, trials added while it serves,
the password masked, and bad input refused in one line before serving."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from infoae_pl.cli import main
from infoae_pl.tuning.storage import _driver_url

NAME = "dash_study"
#: The states of the study's trials, in order: what the page must list.
STATES = (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.RUNNING)
LINE = re.compile(r"^infoae sweep dashboard: study (?P<name>\S+) \((?P<trials>\d+) trials\) in (?P<storage>\S+) at "
                  r"(?P<url>http://127\.0\.0\.1:\d+/dashboard/studies/(?P<id>\d+)) — Ctrl-C stops it$")
REQUIRE_CHROMIUM = "INFOAE_REQUIRE_CHROMIUM"


def add_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> None:
    """Add one trial per state to ``study``, with a parameter and, when complete, a value."""
    for state in states:
        trial = study.ask()
        beta = trial.suggest_float("model.init_args.beta", 0.1, 5.0, log=True)
        if state != TrialState.RUNNING:
            study.tell(trial, (beta - 1.0) ** 2 if state == TrialState.COMPLETE else None, state=state)


@pytest.fixture
def finished_study(write_study, tmp_path):
    """A study YAML whose study, in its default journal file (``output_dir/study.journal``), has the
    trials of :data:`STATES`; returns the YAML's path and the journal's study."""
    path = write_study(name=NAME)
    journal = tmp_path / "sweeps" / NAME / "study.journal"
    journal.parent.mkdir(parents=True)
    study = optuna.create_study(study_name=NAME, storage=JournalStorage(JournalFileBackend(str(journal))))
    add_trials(study, STATES)
    return path, study


class Dashboard:
    """The real `infoae sweep dashboard` command in a process of its own; its first line parsed."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / "dashboard.stderr"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infoae_pl.cli", "sweep", "dashboard", *args, "--port", "0"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, **(env or {})},
                start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(line.rstrip("\n") for line in self.process.stdout),
                         daemon=True).start()

    def first_line(self, seconds: float = 180) -> re.Match:
        """The line that says where the study is served, once the server listens."""
        deadline = time.monotonic() + seconds
        while not self.lines and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self.lines:
            self.process.kill()
            pytest.fail(f"the dashboard never said where it serves; stderr:\n{self.stderr_path.read_text()}")
        match = LINE.match(self.lines[0])
        assert match, f"unexpected first line: {self.lines[0]!r}"
        return match

    def stop(self) -> tuple[int, list[str], str]:
        """Ctrl-C: the exit status, the lines printed after the first one, and stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("the dashboard did not stop on Ctrl-C within 60 s")
        time.sleep(0.2)  # the reader thread reaches the end of stdout
        return code, self.lines[1:], self.stderr_path.read_text()


def api_trials(url: str) -> list[str]:
    """The states of the study's trials as the dashboard's API serves them to the page."""
    base, study_id = url.split("/dashboard/studies/")
    with urllib.request.urlopen(f"{base}/api/studies/{study_id}?after=0", timeout=60) as answer:
        return [trial["state"] for trial in json.load(answer)["trials"]]


@pytest.fixture
def chromium() -> str:
    """A headless-capable Chromium; skipped without one unless INFOAE_REQUIRE_CHROMIUM=1 (.ci/run)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable = pytest.fail if os.environ.get(REQUIRE_CHROMIUM) == "1" else pytest.skip
        unavailable("no chromium (or chromium-browser) on PATH to render the dashboard: apt-get install chromium")
    return found


def browse(chromium: str, url: str, profile: Path, *output: str) -> str:
    """Load ``url`` in headless Chromium, letting the page's scripts run for 10 s of virtual time; its stdout."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--window-size=1280,900", *output, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


def visible_text(dom: str) -> str:
    """The words a reader sees in a rendered DOM: no tags, scripts or styles; spaces collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL | re.IGNORECASE)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG file's header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_a_browser_shows_the_study_its_trials_and_their_states(chromium, finished_study, tmp_path):
    path, _ = finished_study
    dashboard = Dashboard(tmp_path, str(path))
    line = dashboard.first_line()
    try:
        assert (line["name"], int(line["trials"])) == (NAME, len(STATES))
        assert line["storage"] == str(tmp_path / "sweeps" / NAME / "study.journal")
        text = visible_text(browse(chromium, f"{line['url']}/trials", tmp_path / "profile", "--dump-dom"))
        assert f"{NAME} (id={line['id']})" in text, text[:2000]
        assert f"{len(STATES)} Trials" in text, text[:2000]
        for number, state in enumerate(STATES):
            assert f"Trial {number} {state.name.capitalize()}" in text, text[:2000]
        shot = tmp_path / "dashboard.png"
        browse(chromium, line["url"], tmp_path / "profile", f"--screenshot={shot}")
        assert png_size(shot) == (1280, 900)
    finally:
        code, later, stderr = dashboard.stop()
    assert (code, later, stderr) == (0, [], ""), "Ctrl-C stops the dashboard without a word"


@pytest.mark.slow
def test_trials_written_while_it_serves_are_served(finished_study, tmp_path):
    path, study = finished_study
    dashboard = Dashboard(tmp_path, str(path))
    try:
        url = dashboard.first_line()["url"]
        assert api_trials(url) == [state.name.capitalize() for state in STATES]
        running = study.get_trials(states=(TrialState.RUNNING,))[0]
        study.tell(running.number, 0.5)
        add_trials(study, (TrialState.RUNNING,))  # a worker's next trial, as a sweep's worker writes it
        expected = [state.name.capitalize() for state in (*STATES[:-1], TrialState.COMPLETE, TrialState.RUNNING)]
        deadline = time.monotonic() + 60  # optuna-dashboard caches a study's trials for a few seconds
        while (served := api_trials(url)) != expected and time.monotonic() < deadline:
            time.sleep(1)
        assert served == expected
    finally:
        code, _, stderr = dashboard.stop()
    assert (code, stderr) == (0, "")


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_study_is_served_and_its_password_never_shown(write_study, postgres_url, unique_name, tmp_path):
    name = unique_name("dashboard")
    path = write_study(name=name)
    storage = optuna.storages.RDBStorage(_driver_url(postgres_url))
    add_trials(optuna.create_study(study_name=name, storage=storage), (TrialState.COMPLETE, TrialState.FAIL))
    dashboard = Dashboard(tmp_path, str(path), "--storage", "env:INFOAE_DASHBOARD_URL",
                          env={"INFOAE_DASHBOARD_URL": postgres_url})
    try:
        line = dashboard.first_line()
        assert (line["name"], line["trials"]) == (name, "2")
        password = make_url(postgres_url).password
        assert line["storage"] == postgres_url.replace(f":{password}@", ":***@")
        assert f":{password}@" not in line.string
        assert api_trials(line["url"]) == ["Complete", "Fail"]
    finally:
        code, _, stderr = dashboard.stop()
        optuna.delete_study(study_name=name, storage=storage)
    assert (code, stderr) == (0, "")


def _listening_port() -> tuple[socket.socket, int]:
    """A socket listening on a free port of 127.0.0.1, and the port."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, taken.getsockname()[1]


def test_bad_input_gets_one_line_and_exit_status_2_before_serving(write_study, finished_study, tmp_path, capsys):
    assert main(["sweep", "dashboard", str(tmp_path / "nowhere.yaml")]) == 2
    assert capsys.readouterr().err == f"infoae sweep dashboard: study file '{tmp_path / 'nowhere.yaml'}' does not exist\n"

    for port in ("70000", "-1", "http"):
        with pytest.raises(SystemExit) as stop:
            main(["sweep", "dashboard", "x.yaml", "--port", port])
        assert stop.value.code == 2
        assert (f"argument --port: must be an integer from 0 (any free port) to 65535, got '{port}'"
                in capsys.readouterr().err)

    never_ran = write_study(name="never_ran")
    assert main(["sweep", "dashboard", str(never_ran)]) == 2
    journal = tmp_path / "sweeps" / "never_ran" / "study.journal"
    assert capsys.readouterr().err == (f"infoae sweep dashboard: no study yet: {journal} does not exist; "
                                       f"start it with `infoae sweep {never_ran}`\n")
    assert not journal.parent.exists(), "the dashboard creates nothing"
    assert main(["sweep", "dashboard", str(never_ran), "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no study yet: sqlite:///" in capsys.readouterr().err and not (tmp_path / "none.db").exists()

    other, _ = finished_study  # a storage that holds another study
    journal = tmp_path / "sweeps" / NAME / "study.journal"
    assert main(["sweep", "dashboard", str(never_ran), "--storage", str(journal)]) == 2
    assert capsys.readouterr().err == (f"infoae sweep dashboard: no study 'never_ran' in {journal} (it holds "
                                       f"'{NAME}'); start it with `infoae sweep {never_ran}`\n")

    taken, port = _listening_port()
    with taken:
        assert main(["sweep", "dashboard", str(other), "--port", str(port)]) == 2
    assert capsys.readouterr().err == (f"infoae sweep dashboard: cannot listen on 127.0.0.1:{port} (--host, --port): "
                                       "in use; choose another --port\n")


def test_a_database_that_does_not_answer_exits_75_with_its_password_masked(write_study, capsys, monkeypatch):
    taken, port = _listening_port()
    taken.close()  # nothing listens there now
    monkeypatch.setenv("INFOAE_DASHBOARD_URL", f"postgresql://user:Pa55-w0rd@127.0.0.1:{port}/db")
    assert main(["sweep", "dashboard", str(write_study()), "--storage", "env:INFOAE_DASHBOARD_URL"]) == 75
    out, err = capsys.readouterr()
    assert "Pa55-w0rd" not in out + err and out == ""
    assert err.startswith("infoae sweep dashboard: the study's database did not answer (")
    assert err.endswith("); run this again once it does\n") and err.count("\n") == 1

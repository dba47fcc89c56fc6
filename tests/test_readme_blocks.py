"""``scripts/run_readme_blocks.py`` (which CI runs after the suite) knows a tiny form of every command the
README shows, and refuses a command it does not know instead of skipping it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("run_readme_blocks", ROOT / "scripts" / "run_readme_blocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_readme_command_has_a_tiny_form(tmp_path):
    runner = _runner()
    blocks = runner.bash_blocks((ROOT / "README.md").read_text())
    lines = [line for block in blocks for line in block]
    assert any(line.startswith("infoae fit ") for line in lines) and any("make reproduce-fig1" in line for line in lines)
    for line in lines:
        runner.tiny_form(line, tmp_path)  # KeyError for a command with no tiny form


def test_a_tiny_form_is_appended_before_a_redirection_and_unknown_commands_are_refused(tmp_path):
    runner = _runner()
    assert runner.tiny_form("infoae sweep sweeps/x.yaml", tmp_path) == "infoae sweep sweeps/x.yaml --n-trials 2"
    assert runner.tiny_form("make test", tmp_path) is None
    with pytest.raises(KeyError, match="no tiny form"):
        runner.tiny_form("rm -rf runs", tmp_path)
    blocks = runner.bash_blocks("```bash\n# a comment\ninfoae --help   # trailing comment\n```\n```sh\npip x\n```")
    assert blocks == [["infoae --help"]]

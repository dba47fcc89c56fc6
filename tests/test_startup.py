"""``infoae --help``, ``infoae theory ...`` and the sweep's and reproductions' ``--help`` start at once:
they import neither torch nor Lightning (importing Lightning alone takes seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "optuna", "wandb", "matplotlib")

PROBE = """
import contextlib, io, json, sys
import infoae_pl.cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        status = infoae_pl.cli.main(sys.argv[1:])
    except SystemExit as stop:  # argparse's --help
        status = stop.code
print(json.dumps({"status": status, "out": out.getvalue(), "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def dispatch(*argv: str) -> dict:
    """Run ``infoae ARGV`` in a fresh interpreter; its exit status, output and the heavy packages it imported."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["heavy"] = sorted(set(result.pop("modules")) & set(HEAVY))
    return result


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], "usage: infoae SUBCOMMAND"),
        (["theory", "table"], "subspace"),
        (["theory", "compile", "--preset", "beta_elbo", "--param", "beta=0.5"], "tractable:"),
        (["sweep", "--help"], "usage: infoae sweep"),
        (["sweep", "report", "--help"], "usage: infoae sweep report"),
        (["sweep", "dashboard", "--help"], "usage: infoae sweep dashboard"),
        (["reproduce", "--help"], "usage: infoae reproduce FIGURE"),
    ],
)
def test_help_and_theory_import_no_heavy_package(argv, expected):
    result = dispatch(*argv)
    assert result["status"] == 0
    assert expected in result["out"]
    assert "torch" not in result["heavy"] and "lightning" not in result["heavy"]
    assert result["heavy"] == [], f"`infoae {' '.join(argv)}` imported {result['heavy']}"


def test_the_package_and_its_subpackage_entry_points_import_lightly():
    code = ("import sys, infoae_pl, infoae_pl.cli, infoae_pl.tuning, infoae_pl.tuning.cli, infoae_pl.reproduce, "
            "infoae_pl.objectives.cli; print(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {m.split(".")[0] for m in done.stdout.split()} & set(HEAVY) == set()


def test_lazy_public_names_still_import():
    from infoae_pl import tuning

    assert callable(tuning.run_sweep) and callable(tuning.load_study)
    assert set(tuning.__all__) <= set(dir(tuning))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        tuning.nothing  # noqa: B018

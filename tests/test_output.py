"""What a user reads from a tiny ``infoae fit`` (W&B logger, progress bar) and ``infoae test``, run as
the console command in a clean environment: no W&B banner or colour codes, no Lightning "Tip" lines or
known deprecation warnings, a progress bar that does not read ``Epoch 0/-2``, the results' locations, and
metric names printed as written (Lightning's table dropped ``[log p(x|z)]`` as rich markup)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infoae_pl.readable_output import print_metrics_table

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "--config", str(CONFIGS / "beta_elbo_mog1d.yaml"), "--trainer.callbacks.init_args.quadrature_grid_size", "501",
    "--data.val_size", "200", "--data.test_size", "200", "--model.init_args.hidden_dim", "16",
]
#: Variables a user's shell does not set; the test suite's own settings must not hide the noise.
SUITE_SETTINGS = ("WANDB_SILENT", "JSONARGPARSE_DEPRECATION_WARNINGS", "PYTHONWARNINGS")


def infoae(*argv: str, cwd: Path) -> str:
    """Run ``infoae ARGV`` as a user would (W&B offline, folders in ``cwd``); its stdout and stderr together."""
    # No WANDB_* of the suite's either: WANDB_SERVICE, set once an earlier test in this process used W&B,
    # would make the child log through that process's W&B service, and its run files went elsewhere.
    env = {k: v for k, v in os.environ.items() if k not in SUITE_SETTINGS and not k.startswith("WANDB_")}
    env.update({"WANDB_MODE": "offline", "WANDB_DIR": str(cwd), "WANDB_CONFIG_DIR": str(cwd / ".wandb-config"),
                "WANDB_CACHE_DIR": str(cwd / ".wandb-cache"), "WANDB_DATA_DIR": str(cwd / ".wandb-data")})
    done = subprocess.run([sys.executable, "-c", "import sys; from infoae_pl.cli import main; sys.exit(main())", *argv],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def assert_quiet(output: str) -> None:
    assert "Tip:" not in output and "litlogger" not in output and "litmodels" not in output
    assert "wandb:" not in output and "\x1b[" not in output, "W&B's banner, summary or colour codes"
    assert "LeafSpec" not in output and "Deprecat" not in output and "IterableDataset" not in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_fit_and_test_print_only_what_the_user_needs(tmp_path):
    fit = infoae("fit", *TINY, "--config", str(CONFIGS / "wandb_offline.yaml"), "--trainer.max_steps", "30",
                 "--trainer.val_check_interval", "15", cwd=tmp_path)
    assert_quiet(fit)
    assert "Epoch 0/-2" not in fit and "/-2" not in fit
    assert "Epoch 0" in fit, "the progress bar is still there"
    assert "infoae fit: results in " in fit and "W&B run " in fit, "where the results went is still said"
    assert list(tmp_path.rglob("offline-run-*/run-*.wandb")), "the W&B run is still written"

    checkpoint = sorted((tmp_path / "runs").rglob("*.ckpt"))[-1]
    test = infoae("test", *TINY, "--ckpt_path", str(checkpoint), cwd=tmp_path)
    assert_quiet(test)
    for name in ("test/E_q[log p(x|z)]", "test/E_q[log q(z|x)]", "test/E_q[log p(z)]", "test/nll"):
        assert test.count(name) == 1, f"{name} must be printed once, intact:\n{test}"
    assert not any(line.split("│")[1].strip() == "test/E_q" for line in test.splitlines() if line.count("│") > 2)


@pytest.mark.slow
def test_a_sweep_prints_one_line_per_trial(tmp_path):
    """Each trial used to add ~30 lines: W&B's banner and run summary with colour codes, Lightning's tips
    and info lines."""
    base = yaml.safe_load((CONFIGS / "beta_elbo_mog1d.yaml").read_text())
    base["model"]["init_args"].update(hidden_dim=16, kl_warmup_steps=5)
    base["data"].update(val_size=200, test_size=200)
    base["trainer"].update(max_steps=10, val_check_interval=10, log_every_n_steps=5)
    base["trainer"]["callbacks"][0]["init_args"]["quadrature_grid_size"] = 501
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "study_name": "quiet", "base_config": "base.yaml", "n_trials": 2, "sampler": {"name": "random", "seed": 0},
        "search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 2.0}},
        "objectives": [{"metric": "val/nll", "direction": "minimize"}],
    }))
    output = infoae("sweep", "study.yaml", "--no-report", cwd=tmp_path)
    assert_quiet(output)
    trial_lines = [line for line in output.splitlines() if line.startswith("[sweep quiet] trial ")]
    assert len(trial_lines) == 2 and all(" COMPLETE " in line for line in trial_lines), output
    assert len(output.strip().splitlines()) <= 10, output
    assert len(list(tmp_path.rglob("offline-run-*/run-*.wandb"))) == 2, "W&B runs still written"


def test_the_results_table_prints_names_as_plain_text(capsys):
    print_metrics_table("Test", {"test/E_q[log p(x|z)]": 1.5, "test/[bold]x[/bold]": 2.0})
    out = capsys.readouterr().out
    assert "test/E_q[log p(x|z)]" in out and "test/[bold]x[/bold]" in out and "1.5" in out

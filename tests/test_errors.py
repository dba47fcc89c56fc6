"""Bad input ends in one short message naming the option and what it accepts, with exit code 2, before
any work: model and data options, config and study files (binary, not YAML, a key given twice), and the
reproductions' inputs. Each used to print a 50–85-line double traceback, or take the last of two keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch  # noqa: F401  Lightning's log handler keeps the sys.stderr it was imported with: not a test's capsys
import pytest
import yaml

from infoae_pl.cli import main
from infoae_pl.yaml_loading import DuplicateKeyError, StrictSafeLoader, load_yaml_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MOG = str(CONFIGS / "beta_elbo_mog1d.yaml")
LAGRANGIAN = str(CONFIGS / "lagrangian_mog1d.yaml")
SHORT = ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1"]  # should a bad config be taken, it trains briefly
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256))


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``infoae ARGV``'s message, after checking that it exits with code 2 in a few lines, no traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 5, output
    return captured.err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--config", MOG, "--model.init_args.beta", "-1"], "infoae fit: beta must be >= 0.0, got -1.0"),
        (["--config", MOG, "--data.dataset", "cifar10"],
         "infoae fit: dataset='cifar10' is not supported; choose one of: mog1d, ring8, mnist, mnist5k, fashion_mnist"),
        (["--config", LAGRANGIAN, "--model.init_args.lagrangian", '{"I_q": -0.5, "I_zz": 1.0}'],
         "infoae fit: unknown term 'I_zz'; valid terms: I_p, I_q, KL(p(x,z)||q(x,z))"),
        (["--config", MOG, "--model.init_args.bogus", "1"], "Option 'bogus' is not accepted"),
    ],
    ids=["negative-beta", "unknown-dataset", "unknown-term", "unknown-option"],
)
def test_a_bad_model_or_data_option_is_one_message(options, message, capsys, tmp_path):
    err = refused(["fit", *options], capsys)
    assert message in err
    assert not Path("runs").exists(), "nothing was started"


def test_the_command_line_exit_code_and_output(tmp_path):
    """The console script itself: exit code 2 and a short stderr (Lightning's info lines included)."""
    done = subprocess.run([sys.executable, "-c", "import sys; from infoae_pl.cli import main; sys.exit(main())",
                           "fit", "--config", MOG, "--model.init_args.beta", "-1"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "WANDB_MODE": "offline"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "infoae fit: beta must be >= 0.0, got -1.0"
    assert "Traceback" not in done.stderr and len((done.stdout + done.stderr).strip().splitlines()) <= 5


def test_a_binary_config_file_is_refused(tmp_path, capsys):
    (tmp_path / "image.yaml").write_bytes(PNG)
    err = refused(["fit", "--config", str(tmp_path / "image.yaml")], capsys)
    assert "--config" in err and "image.yaml' is not a YAML text file: byte 0x89 at offset 0 is not UTF-8" in err


def test_a_config_file_that_is_not_yaml_is_refused_with_its_line(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("model:\n  init_args: {beta: [0.2\n")
    err = refused(["fit", "--config", str(tmp_path / "broken.yaml")], capsys)
    assert "broken.yaml' is not valid YAML" in err and "line 3" in err


def test_a_key_given_twice_in_a_config_is_refused(tmp_path, capsys):
    """PyYAML keeps the last of two equal keys: this config used to train with β = 5 without a word."""
    (tmp_path / "twice.yaml").write_text("model:\n  init_args:\n    beta: 0.2\n    hidden_dim: 16\n    beta: 5.0\n")
    err = refused(["fit", "--config", MOG, "--config", str(tmp_path / "twice.yaml"), *SHORT], capsys)
    assert "twice.yaml" in err and "found key 'beta' a second time (first on line 3)" in err and "line 5" in err


def test_a_key_given_twice_in_a_nested_config_file_is_refused(tmp_path, capsys):
    """Files jsonargparse reads itself (``--model FILE``) go through the same check."""
    (tmp_path / "model.yaml").write_text("class_path: infoae_pl.models.BetaELBO\ninit_args:\n  beta: 0.2\n  beta: 5.0\n")
    err = refused(["fit", "--config", MOG, "--model", str(tmp_path / "model.yaml"), *SHORT], capsys)
    assert "found key 'beta' a second time" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (PNG, "study file '{path}' is not a YAML text file: byte 0x89 at offset 0"),
        (b"study_name: [tiny\n", "study file '{path}' is not valid YAML"),
        (b"study_name: a\nn_trials: 2\nstudy_name: b\n", "found key 'study_name' a second time (first on line 1)"),
    ],
    ids=["binary", "not-yaml", "key-twice"],
)
def test_a_bad_study_file_is_one_message(content, message, tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    err = refused(["sweep", str(path)], capsys)
    assert err.startswith("infoae sweep: ") and message.format(path=path) in err


def test_a_key_given_twice_in_a_study_base_config_is_refused(tmp_path, capsys):
    (tmp_path / "base.yaml").write_text(Path(MOG).read_text() + "seed_everything: 1\n")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump({
        "study_name": "twice", "base_config": "base.yaml", "n_trials": 1, "config": {"trainer.max_steps": 1},
        "search_space": {"model.init_args.beta": {"type": "float", "low": 0.1, "high": 1.0}},
        "objectives": [{"metric": "val/nll", "direction": "minimize"}],
    }))
    err = refused(["sweep", str(tmp_path / "study.yaml")], capsys)
    assert "base_config" in err and "found key 'seed_everything' a second time" in err


def test_a_reproduction_with_a_missing_data_folder_is_one_message(tmp_path, capsys):
    err = refused(["reproduce", "lagrangian", "--profile", "paper", "--data-dir", str(tmp_path / "none"),
                   "--out", str(tmp_path / "out")], capsys)
    assert err.startswith("infoae reproduce lagrangian: IDX image files not found in directory")
    assert "train-images-idx3-ubyte" in err


def test_the_strict_loader_allows_merge_keys_and_refuses_repeats_at_any_depth():
    text = "base: &b {beta: 0.2, lr: 0.1}\nrun:\n  <<: *b\n  beta: 0.5\n"
    assert yaml.load(text, Loader=StrictSafeLoader)["run"] == {"beta": 0.5, "lr": 0.1}
    with pytest.raises(DuplicateKeyError, match="found key 'lr' a second time"):
        yaml.load("a:\n  b:\n    - {lr: 1, lr: 2}\n", Loader=StrictSafeLoader)
    with pytest.raises(ValueError, match=r"here is not valid YAML: found key 1 a second time .*\(line 2, column 1\)"):
        load_yaml_text("1: a\n1: b\n", "here")

"""The ``infoae`` command end to end, on tiny budgets."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import yaml

from infoae_pl.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST_MOG = [
    "--config", str(CONFIGS / "beta_elbo_mog1d.yaml"),
    "--trainer.max_steps", "40", "--trainer.val_check_interval", "20", "--trainer.enable_progress_bar", "false",
    "--trainer.callbacks.init_args.quadrature_grid_size", "501", "--data.val_size", "200", "--data.test_size", "200",
    "--model.init_args.hidden_dim", "16", "--model.init_args.kl_warmup_steps", "10", "--trainer.log_every_n_steps", "5",
]


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for sub in ("fit", "validate", "test", "theory", "reproduce", "sweep"):
        assert f"\n  {sub}" in out


def test_unknown_subcommand_is_refused_with_choices(capsys):
    assert main(["train"]) == 2
    assert "unknown subcommand 'train'; choose one of: fit, validate, test" in capsys.readouterr().err


def test_fit_then_test_from_checkpoint_saves_resolved_config(tmp_path):
    main(["fit", *FAST_MOG, "--trainer.logger.init_args.save_dir", str(tmp_path)])
    run_dir = tmp_path / "infoae" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["class_path"] == "infoae_pl.models.BetaELBO"
    assert config["model"]["init_args"]["beta"] == 0.2 and config["data"]["dataset"] == "mog1d"
    assert len(list((run_dir / "checkpoints").glob("epoch=*.ckpt"))) == 1
    last = run_dir / "checkpoints" / "last.ckpt"
    logged = {k for row in _metrics(run_dir) for k, v in row.items() if v}
    assert {"train/loss", "train/recon_nll", "train/kl", "val/nll", "val/elbo", "val/mi_ba"} <= logged
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["test", *FAST_MOG, "--trainer.logger.init_args.save_dir", str(tmp_path / "eval"),
              "--ckpt_path", str(last)])
    # Testing saves no checkpoint: Lightning's notice that the checkpoint folder moved is not shown.
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    tested = {k for row in _metrics(tmp_path / "eval" / "infoae" / "version_0") for k, v in row.items() if v}
    assert {"test/nll", "test/elbo", "test/loss"} <= tested


def test_rerunning_the_saved_config_repeats_the_numbers(tmp_path):
    main(["fit", *FAST_MOG, "--trainer.logger.init_args.save_dir", str(tmp_path / "a")])
    saved = tmp_path / "a" / "infoae" / "version_0" / "config.yaml"
    main(["fit", "--config", str(saved), "--trainer.logger.init_args.save_dir", str(tmp_path / "b")])
    first = _metrics(tmp_path / "a" / "infoae" / "version_0")
    second = _metrics(tmp_path / "b" / "infoae" / "version_0")
    assert [r["val/nll"] for r in first if r["val/nll"]] == [r["val/nll"] for r in second if r["val/nll"]]


def test_print_config_is_complete(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "beta_elbo_mnist5k.yaml"), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["hidden_dim"] == 1024 and printed["data"]["dataset"] == "mnist5k"


def test_bad_option_value_fails_before_training(tmp_path, capsys):
    assert main(["fit", *FAST_MOG, "--data.dataset", "cifar10", "--trainer.logger.init_args.save_dir", str(tmp_path)]) == 2
    assert "dataset='cifar10' is not supported" in capsys.readouterr().err
    assert not (tmp_path / "infoae").exists()


def test_mnist5k_config_trains(tmp_path):
    main([
        "fit", "--config", str(CONFIGS / "beta_elbo_mnist5k.yaml"), "--trainer.max_steps", "3",
        "--trainer.val_check_interval", "3", "--trainer.log_every_n_steps", "1",
        "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
        "--model.init_args.hidden_dim", "32", "--trainer.callbacks.init_args.importance_samples", "8",
        "--trainer.logger.init_args.save_dir", str(tmp_path),
    ])
    logged = {k for row in _metrics(tmp_path / "infoae" / "version_0") for k, v in row.items() if v}
    assert {"train/loss", "val/nll", "val/mmd_qz_pz"} <= logged


def test_wandb_offline_run_files_appear(tmp_path):
    main(["fit", *FAST_MOG, "--config", str(CONFIGS / "wandb_offline.yaml"),
          "--trainer.logger.init_args.save_dir", str(tmp_path / "runs")])
    runs = list((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb")), "the offline run must hold its .wandb log file"
    figures = list((runs[0] / "files" / "media" / "images" / "val").glob("density_*.png"))
    assert len(figures) == 2, "one density figure per validation must reach the W&B run"

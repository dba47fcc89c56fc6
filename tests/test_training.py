"""Where ``infoae fit|validate|test`` runs write, how they end, what they print, and their CPU threads."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import torch
import yaml

from infoae_pl.cli import main
from infoae_pl.training import THREADS_ENV

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MOG = str(CONFIGS / "beta_elbo_mog1d.yaml")
# The shipped 1-D config made tiny; its validation interval stays 1,000 steps unless a test sets it.
TINY = [
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.callbacks.init_args.quadrature_grid_size", "501", "--data.val_size", "200", "--data.test_size", "200",
    "--model.init_args.hidden_dim", "16", "--trainer.log_every_n_steps", "5",
]
RUNS = Path("runs") / "infoae"  # relative to the test's folder (conftest changes into tmp_path)


def _exit_code(argv: list[str]) -> int | str | None:
    """``main``'s exit code, also when it ends by ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as error:
        return error.code


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture
def restore_threads():
    """Put torch's thread count back for the tests after this one."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_two_wandb_runs_keep_their_own_folders_configs_figures_and_metrics(tmp_path):
    for beta in ("0.2", "0.5"):
        main(["fit", "--config", MOG, "--config", str(CONFIGS / "wandb_offline.yaml"), *TINY,
              "--trainer.max_steps", "20", "--model.init_args.beta", beta])
    assert sorted(p.name for p in Path("runs").iterdir()) == ["infoae", "wandb"], "nothing loose in runs/"
    for version, beta in ((0, 0.2), (1, 0.5)):
        run_dir = RUNS / f"version_{version}"
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["init_args"]["beta"] == beta
        assert any(r["val/nll"] for r in _rows(run_dir))
        assert len(list((run_dir / "figures").glob("val_density_*.png"))) == 1
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list(Path("runs/wandb").glob("offline-run-*"))) == 2


def test_a_run_without_a_logger_writes_nothing_into_the_working_folder(tmp_path):
    for _ in range(2):
        main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "20", "--trainer.logger", "false"])
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("wandb_")) == ["runs"]
    for version in (0, 1):
        run_dir = RUNS / f"version_{version}"
        assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
        assert len(list((run_dir / "figures").glob("*.png"))) == 1


def test_a_run_shorter_than_its_validation_interval_ends_validated_and_the_readme_test_command_works(tmp_path):
    main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "30"])  # the config validates every 1,000 steps
    run_dir = RUNS / "version_0"
    validated = [int(r["step"]) for r in _rows(run_dir) if r["val/nll"]]
    assert validated == [29], "one validation, at the last step"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # The README's command, word for word.
    main(["test", "--config", "runs/infoae/version_0/config.yaml",
          "--ckpt_path", "runs/infoae/version_0/checkpoints/last.ckpt"])
    assert any(r.get("test/nll") for r in _rows(RUNS / "version_1"))


def test_a_last_step_the_cadence_validates_is_validated_once(tmp_path):
    main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "40", "--trainer.val_check_interval", "20"])
    assert [int(r["step"]) for r in _rows(RUNS / "version_0") if r["val/nll"]] == [19, 39]


def test_a_last_epoch_that_cannot_be_validated_is_named(tmp_path):
    with pytest.warns(UserWarning, match=r"the last step \(30\) was not validated: trainer.check_val_every_n_epoch=2"):
        main(["fit", "--config", MOG, *TINY, "--data.steps_per_epoch", "10", "--trainer.max_steps", "30",
              "--trainer.val_check_interval", "1.0", "--trainer.check_val_every_n_epoch", "2"])


def test_a_missing_checkpoint_stops_before_any_folder_is_made(tmp_path, capsys):
    assert _exit_code(["test", "--config", MOG, *TINY, "--ckpt_path", "runs/infoae/version_0/checkpoints/last.ckpt"]) == 2
    assert "infoae test: --ckpt_path runs/infoae/version_0/checkpoints/last.ckpt: no such file" in capsys.readouterr().err
    assert not Path("runs").exists()


def test_a_command_that_fails_after_starting_leaves_no_empty_run_folder(tmp_path):
    torch.save({"epoch": 0}, "other.ckpt")  # a torch file, not a Lightning checkpoint: fails once the run started
    with pytest.raises(KeyError):
        main(["test", "--config", MOG, *TINY, "--ckpt_path", "other.ckpt"])
    assert not Path("runs").exists()
    main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "10"])  # a run that holds results stays
    with pytest.raises(KeyError):
        main(["test", "--config", MOG, *TINY, "--ckpt_path", "other.ckpt"])
    assert sorted(p.name for p in RUNS.iterdir()) == ["version_0"]


def test_fit_says_where_its_results_went(tmp_path, capsys):
    main(["fit", "--config", MOG, "--config", str(CONFIGS / "wandb_offline.yaml"), *TINY, "--trainer.max_steps", "10"])
    out = capsys.readouterr().out
    summary = out[out.index("infoae fit: results in runs/infoae/version_0"):].splitlines()
    labels = {line.split()[0] for line in summary[1:]}
    assert {"config", "metrics", "best", "last", "figures", "W&B"} <= labels
    paths = [re.split(r"\s{2,}", line.strip())[1].split(" (")[0] for line in summary[1:]]
    assert paths and all(Path(p).exists() for p in paths), paths
    assert Path(next(p for p in paths if "offline-run-" in p), "files").is_dir()


def test_threads_option_sets_torch_threads_for_the_run(tmp_path, restore_threads):
    torch.set_num_threads(2)
    main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "5", "--threads", "1"])
    assert torch.get_num_threads() == 1
    assert yaml.safe_load((RUNS / "version_0" / "config.yaml").read_text())["threads"] == 1


def test_threads_environment_setting_reaches_fit_sweep_trials_and_reproductions(tmp_path, monkeypatch,
                                                                                 restore_threads):
    from infoae_pl.tuning.trial import build_cli as build_trial_cli

    monkeypatch.setenv(THREADS_ENV, "1")
    torch.set_num_threads(2)
    main(["fit", "--config", MOG, *TINY, "--trainer.max_steps", "5"])
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    build_trial_cli(yaml.safe_load(Path(MOG).read_text()))  # what a sweep worker does before each trial's work
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    with pytest.raises(SystemExit):  # set before the figure's own options are read
        main(["reproduce", "fig1", "--help"])
    assert torch.get_num_threads() == 1


def test_bad_thread_settings_are_refused_before_work(tmp_path, monkeypatch, capsys):
    assert _exit_code(["fit", "--config", MOG, *TINY, "--threads", "0"]) == 2
    assert "threads" in capsys.readouterr().err
    monkeypatch.setenv(THREADS_ENV, "many")
    assert _exit_code(["fit", "--config", MOG, *TINY]) == 2
    assert "infoae fit: INFOAE_THREADS='many': must be a whole number >= 1" in capsys.readouterr().err
    assert not Path("runs").exists()

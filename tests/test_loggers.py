"""The W&B run of ``infoae fit``: name, group, tags, job type, nested config, summary and checkpoints as
artifacts, read back from the offline run files; and the pieces behind them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from infoae_pl._compat import wandb_init_arguments
from infoae_pl.cli import main
from infoae_pl.loggers import BestAndFinal, WandbOfflineLogger, describe_run
from infoae_pl.training import monitored_metrics
from tuning.wandb_records import finished_records, run_record, run_summary

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "--config", str(CONFIGS / "beta_elbo_mog1d.yaml"), "--config", str(CONFIGS / "wandb_offline.yaml"),
    "--trainer.max_steps", "6", "--trainer.val_check_interval", "2", "--trainer.log_every_n_steps", "2",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.callbacks.init_args.quadrature_grid_size", "101", "--data.val_size", "100", "--data.test_size", "100",
    "--model.init_args.hidden_dim", "8", "--model.init_args.kl_warmup_steps", "0",
]


def _fit(*options: str) -> Path:
    """Run ``infoae fit`` on the tiny config with W&B offline; the run's ``offline-run-*`` folder."""
    main(["fit", *TINY, *options])
    (run,) = Path("runs/wandb").glob("offline-run-*")
    return run


def _records(run: Path, kind: str) -> list:
    return [getattr(r, kind) for r in finished_records(run) if r.WhichOneof("record_type") == kind]


def test_a_fit_run_is_named_grouped_tagged_and_keeps_its_nested_config_and_summary(tmp_path):
    run = _fit("--model.init_args.beta", "0.5")
    record = run_record(run)
    # BetaELBO's defaults are beta=1.0 and kl_warmup_steps=0: only beta is set away from its default.
    assert record.display_name == "BetaELBO-mog1d-beta=0.5"
    assert (record.run_group, record.job_type, list(record.tags)) == ("BetaELBO-mog1d", "fit", ["BetaELBO", "mog1d"])
    config = {item.key: json.loads(item.value_json) for item in record.config.update}
    assert config["model"]["class_path"] == "infoae_pl.models.BetaELBO"
    assert config["model"]["init_args"]["beta"] == 0.5 and config["model"]["init_args"]["hidden_dim"] == 8
    assert config["data"]["dataset"] == "mog1d" and config["trainer"]["max_steps"] == 6
    assert config["trainer"]["logger"]["class_path"] == "infoae_pl.loggers.WandbOfflineLogger"
    later = {item.key for c in _records(run, "config") for item in c.update}
    assert "hparams" in later and "beta" not in later  # Lightning's arguments nested, not flat beside the config

    with (Path("runs/infoae/version_0") / "metrics.csv").open() as f:
        losses = [float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")]
    assert len(losses) == 3  # steps 2, 4, 6
    summary = run_summary(run)
    assert summary["final/val/loss"] == pytest.approx(losses[-1])
    assert summary["best/val/loss"] == pytest.approx(min(losses))
    assert _records(run, "artifact") == []  # checkpoints are artifacts only when asked for


def test_a_name_group_and_tags_given_win_and_log_model_keeps_checkpoints_as_artifacts_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_JOB_TYPE", "mine")  # W&B's own variable: it wins too
    run = _fit("--trainer.logger.init_args.name", "my-run", "--trainer.logger.init_args.group", "g",
               "--trainer.logger.init_args.tags", "[a, b]", "--trainer.logger.init_args.log_model", "true")
    record = run_record(run)
    assert (record.display_name, record.run_group, record.job_type, list(record.tags)) == ("my-run", "g", "mine", ["a", "b"])
    artifacts = _records(run, "artifact")
    assert artifacts and {a.type for a in artifacts} == {"model"}
    assert all([entry.path for entry in a.manifest.contents] == ["model.ckpt"] for a in artifacts)


def test_the_summary_watches_the_metric_a_checkpoint_or_early_stopping_monitors(tmp_path):
    watched = Trainer(logger=False, callbacks=[ModelCheckpoint(monitor="val/nll"), EarlyStopping("val/mi", mode="max")],
                      default_root_dir=str(tmp_path))
    assert monitored_metrics(watched) == {"val/nll": "min", "val/mi": "max"}
    assert monitored_metrics(Trainer(logger=False, default_root_dir=str(tmp_path))) == {"val/loss": "min"}


def test_best_and_final_follow_each_metrics_direction_and_skip_non_finite_values():
    summary = BestAndFinal({"val/nll": "min", "val/mi": "max", "test/nll": "min"})
    for nll, mi in ((3.0, 1.0), (1.0, 3.0), (float("nan"), 2.0), (2.0, 0.5)):
        written = summary.record({"val/nll": nll, "val/mi": mi}, loggers=[])
    assert written == {"final/val/nll": 2.0, "best/val/nll": 1.0, "final/val/mi": 0.5, "best/val/mi": 3.0}
    assert summary.record({"test/nll": 4.0}, loggers=[]) == {"final/test/nll": 4.0}  # a test metric: final only
    assert math.isnan(summary.record({"val/nll": float("nan")}, loggers=[])["final/val/nll"])
    with pytest.raises(ValueError, match=r"mode of val/nll='minimize' is not supported; choose one of: min, max"):
        BestAndFinal({"val/nll": "minimize"})


def test_a_group_from_the_environment_and_a_config_given_win_over_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_GROUP", "from-env")
    logger = WandbOfflineLogger(save_dir=str(tmp_path), config={"b": 3})
    describe_run(logger, {"name": "default-name", "group": "default-group", "config": {"a": 1, "b": 2}})
    assert wandb_init_arguments(logger)["group"] == "from-env" and wandb_init_arguments(logger)["name"] == "default-name"
    run = logger.experiment
    try:
        assert (run.name, run.group, dict(run.config)) == ("default-name", "from-env", {"a": 1, "b": 3})
    finally:
        run.finish()

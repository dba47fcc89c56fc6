"""The LightningCLI of ``infoae fit|validate|test``, shared by the command, sweep trials and reproductions.

:mod:`infoae_pl.cli` only dispatches and imports this module when a trainer subcommand runs, so that
``infoae --help``, ``infoae theory`` and ``infoae sweep --help`` start without Lightning.
"""

from __future__ import annotations

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningCLI

from infoae_pl.data import InfoAEDataModule


class InfoAECLI(LightningCLI):
    """LightningCLI whose model is chosen by class path and whose data is the one shared datamodule."""

    def add_arguments_to_parser(self, parser) -> None:
        # The model's input size always follows the dataset.
        parser.link_arguments("data.data_dim", "model.init_args.data_dim", apply_on="instantiate")


CLI_DEFAULTS: dict = dict(
    subclass_mode_model=True,
    seed_everything_default=0,
    save_config_kwargs={"overwrite": True},
    auto_configure_optimizers=False,
)


def run_lightning(argv: list[str] | None) -> int:
    """Run ``fit``/``validate``/``test`` through LightningCLI (``argv=None``: the command line); the
    resolved config lands beside the checkpoints."""
    build_cli(argv)
    return 0


def build_cli(argv: list[str] | None) -> InfoAECLI:
    """The LightningCLI of ``infoae fit|validate|test`` after it ran, so callers can reach its model and trainer."""
    return InfoAECLI(
        LightningModule,
        InfoAEDataModule,
        args=argv,
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": "runs", "name": "infoae"},
            },
        },
        **CLI_DEFAULTS,
    )


__all__ = ["CLI_DEFAULTS", "InfoAECLI", "build_cli", "run_lightning"]

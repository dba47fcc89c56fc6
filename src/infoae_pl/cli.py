"""The ``infoae`` command: LightningCLI for fit/validate/test, plus ``theory`` and ``reproduce``."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LightningCLI

from infoae_pl.data import InfoAEDataModule

TRAINER_SUBCOMMANDS = ("fit", "validate", "test")

HELP = """usage: infoae SUBCOMMAND [options]

Train and study the Information-Autoencoding family of latent-variable models.

subcommands:
  fit        train a model:       infoae fit --config configs/beta_elbo_mog1d.yaml
  validate   evaluate on the validation split (--ckpt_path CHECKPOINT)
  test       evaluate on the test split (--ckpt_path CHECKPOINT)
  theory     the objective algebra: `infoae theory table`, `infoae theory compile --term 'I_q=-0.5' ...`
  reproduce  reproduce a figure of the paper: `infoae reproduce fig1 [--profile default|paper]`
  sweep      search Lagrange multipliers with Optuna: `infoae sweep sweeps/beta_elbo_beta.yaml [--workers N]`,
             `infoae sweep report sweeps/beta_elbo_beta.yaml`

`infoae SUBCOMMAND --help` shows the options of one subcommand; `infoae fit --print_config`
prints a complete, editable config.
"""


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


def _theory(argv: list[str]) -> int:
    from infoae_pl.objectives.cli import theory_main

    return theory_main(argv)


def _reproduce(argv: list[str]) -> int:
    from infoae_pl.reproduce import reproduce_main

    return reproduce_main(argv)


def _sweep(argv: list[str]) -> int:
    from infoae_pl.tuning.cli import sweep_main

    return sweep_main(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {"theory": _theory, "reproduce": _reproduce, "sweep": _sweep}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``infoae`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    command, rest = argv[0], argv[1:]
    if command in TRAINER_SUBCOMMANDS:
        return run_lightning(None if from_command_line else argv)
    if command in SUBCOMMANDS:
        return SUBCOMMANDS[command](rest)
    allowed = ", ".join((*TRAINER_SUBCOMMANDS, *SUBCOMMANDS))
    print(f"infoae: unknown subcommand {command!r}; choose one of: {allowed}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

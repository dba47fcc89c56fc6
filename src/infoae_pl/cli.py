"""The ``infoae`` command: dispatches to LightningCLI for fit/validate/test, ``theory``, ``reproduce`` and ``sweep``.

This module only dispatches: each subcommand imports its (heavy) modules when it runs, so that
``infoae --help``, ``infoae theory ...`` and ``infoae sweep --help`` start without Lightning or torch.
The LightningCLI itself is :mod:`infoae_pl.training`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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


def _lightning(argv: list[str] | None) -> int:
    from infoae_pl.training import run_lightning

    return run_lightning(argv)


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
        return _lightning(None if from_command_line else argv)
    if command in SUBCOMMANDS:
        return SUBCOMMANDS[command](rest)
    allowed = ", ".join((*TRAINER_SUBCOMMANDS, *SUBCOMMANDS))
    print(f"infoae: unknown subcommand {command!r}; choose one of: {allowed}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

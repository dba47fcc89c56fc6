"""The ``infoae`` command: dispatches to LightningCLI for fit/validate/test, ``theory``, ``reproduce`` and ``sweep``.

This module only dispatches: each subcommand imports its (heavy) modules when it runs, so that
``infoae --help``, ``infoae theory ...`` and ``infoae sweep --help`` start without Lightning or torch.
The LightningCLI itself is :mod:`infoae_pl.training`. Bad input ends in one line on stderr and exit
code 2; libraries' known noise is silenced (:mod:`infoae_pl.quiet`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from itertools import pairwise

from infoae_pl.quiet import quiet_third_party

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


def _lightning(command: str, argv: list[str] | None, args: list[str]) -> int:
    """``infoae fit|validate|test``: the ``--config`` files are read strictly before Lightning loads, and a
    bad option or input ends in one message and exit code 2 rather than a traceback."""
    from argparse import ArgumentError

    from infoae_pl.errors import short_message
    from infoae_pl.validation import OptionError
    from infoae_pl.yaml_loading import load_yaml_file

    try:
        for path in config_files(args):
            load_yaml_file(path, "--config")
        from infoae_pl.training import run_lightning

        return run_lightning(argv)
    except ArgumentError as error:
        message = short_message(error)
        hint = f"`infoae {command} --help` lists the options"
        class_path = re.match(r"Parser key \"model\":.*?class_path '([\w.]+)'", message, re.DOTALL)
        if class_path:
            hint += f"; `infoae {command} --model.help {class_path[1]}` those of the model"
        return refuse(f"infoae {command}", message, hint)
    except (OptionError, FileNotFoundError) as error:
        return refuse(f"infoae {command}", short_message(error))


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


def config_files(args: list[str]) -> list[str]:
    """The existing files given to ``--config``/``-c`` (``--config FILE`` or ``--config=FILE``); other
    values (a YAML string, a missing file) are jsonargparse's to judge."""
    values = [value for option, value in pairwise(args) if option in ("--config", "-c")]
    values += [option.split("=", 1)[1] for option in args if option.startswith("--config=")]
    return [value for value in values if os.path.isfile(value)]


def refuse(prog: str, message: str, hint: str | None = None) -> int:
    """Print ``prog: message`` (and a hint) on stderr; the exit code of bad input, 2."""
    print(f"{prog}: {message}" + (f"\n{hint}" if hint else ""), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``infoae`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    command, rest = argv[0], argv[1:]
    if command != "theory":
        quiet_third_party()
    if command in TRAINER_SUBCOMMANDS:
        return _lightning(command, None if from_command_line else argv, rest)
    if command in SUBCOMMANDS:
        return SUBCOMMANDS[command](rest)
    allowed = ", ".join((*TRAINER_SUBCOMMANDS, *SUBCOMMANDS))
    print(f"infoae: unknown subcommand {command!r}; choose one of: {allowed}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

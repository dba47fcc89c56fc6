"""Reproductions of the paper's figures: ``infoae reproduce FIGURE``."""

from __future__ import annotations

import sys


def reproduce_main(argv: list[str]) -> int:
    """Dispatch ``infoae reproduce fig1|fig2|families|lagrangian ...`` to the figure's module; bad input
    (a missing data folder or config, an option a model refuses) exits with one message and code 2."""
    figures = ("fig1", "fig2", "families", "lagrangian")
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: infoae reproduce FIGURE [options]   (FIGURE: {', '.join(figures)}; FIGURE --help for its options)")
        return 0
    if argv[0] not in figures:
        print(f"infoae reproduce: unknown figure {argv[0]!r}; choose one of: {', '.join(figures)}", file=sys.stderr)
        return 2
    from argparse import ArgumentError
    from importlib import import_module

    from infoae_pl.errors import short_message
    from infoae_pl.preemption import stop_on_sigterm
    from infoae_pl.training import use_threads
    from infoae_pl.validation import OptionError

    try:
        use_threads()  # INFOAE_THREADS, before the figure's work (fig1 and lagrangian build their own trainers)
        with stop_on_sigterm(f"infoae reproduce {argv[0]}", hint="run the same command again to resume"):
            return import_module(f"infoae_pl.reproduce.{argv[0]}").main(argv[1:])
    except (ArgumentError, OptionError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        print(f"infoae reproduce {argv[0]}: {short_message(error)}", file=sys.stderr)
        return 2

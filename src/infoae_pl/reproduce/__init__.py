"""Reproductions of the paper's figures: ``infoae reproduce FIGURE``."""

from __future__ import annotations

import sys


def reproduce_main(argv: list[str]) -> int:
    """Dispatch ``infoae reproduce fig1|fig2|families|lagrangian ...`` to the figure's module."""
    figures = ("fig1", "fig2", "families", "lagrangian")
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: infoae reproduce FIGURE [options]   (FIGURE: {', '.join(figures)}; FIGURE --help for its options)")
        return 0
    if argv[0] not in figures:
        print(f"infoae reproduce: unknown figure {argv[0]!r}; choose one of: {', '.join(figures)}", file=sys.stderr)
        return 2
    from importlib import import_module

    return import_module(f"infoae_pl.reproduce.{argv[0]}").main(argv[1:])

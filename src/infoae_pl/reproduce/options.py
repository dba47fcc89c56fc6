"""Command-line options shared by the reproductions: seed lists and step counts, checked on parsing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


class DistinctSeeds(argparse.Action):
    """``--seeds 0 1 2``: distinct integers, stored as a tuple."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        seeds = tuple(values or ())
        if len(set(seeds)) != len(seeds):
            parser.error(f"{option_string} must be distinct, got {list(seeds)}")
        setattr(namespace, self.dest, seeds)

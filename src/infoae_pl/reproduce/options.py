"""Command-line options shared by the reproductions: seed lists and step counts, checked on parsing,
and applied to a profile."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

P = TypeVar("P")


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


def with_overrides(profile: P, **overrides: Any) -> P:
    """``profile`` (a dataclass) with every override that was given on the command line (not None)."""
    return replace(profile, **{k: v for k, v in overrides.items() if v is not None})

"""Option checks shared by every package: bad input fails before training with the option's name."""

from __future__ import annotations

import math
from collections.abc import Sequence


class OptionError(ValueError):
    """An option or input file that cannot be used; the message names it and what would be accepted.
    ``infoae`` prints it as one message and exits with code 2 (see :mod:`infoae_pl.errors`)."""


def check_choice(option: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError naming the option and the allowed values."""
    if value not in allowed:
        raise ValueError(f"{option}={value!r} is not supported; choose one of: {', '.join(allowed)}")
    return value


def check_finite_number(option: str, value: float, minimum: float | None = None) -> None:
    """Raise a ValueError naming ``option`` unless ``value`` is finite (and at least ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{option} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{option} must be >= {minimum}, got {value!r}")


def check_int_at_least(option: str, value: int | None, minimum: int) -> None:
    """Raise a ValueError naming ``option`` unless ``value`` is None or an integer >= ``minimum``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ValueError(f"{option} must be an integer >= {minimum}, got {value!r}")

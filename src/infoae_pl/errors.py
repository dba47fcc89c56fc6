"""Bad input reported as one short message (the option, what it accepts), exit code 2, before any work.

Model and data constructors check their options and raise ``ValueError``; jsonargparse wraps such
an error in several layers ("Does not validate against any of the Union subtypes ...") and LightningCLI
lets it escape as a double traceback. :class:`OptionErrorsCLI` turns both kinds into an
:class:`~infoae_pl.validation.OptionError` (or jsonargparse's ``ArgumentError``) whose message
:func:`short_message` keeps to the lines a user needs.
"""

from __future__ import annotations

import re
from typing import Any

from infoae_pl.validation import OptionError

# jsonargparse's lines that describe its own machinery rather than the user's input.
_NOISE = re.compile(
    r"^\s*(?:- )?(?:Does not validate against any of the Union subtypes|Subtypes: .*|Errors:|Given value type: .*|"
    r"Given value: .*|Expected a <class 'NoneType'>)\s*$"
)


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of ``error``'s ``raise ... from`` chain: the one a constructor raised."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def short_message(error: BaseException) -> str:
    """``error``'s message without jsonargparse's machinery (union subtypes, given values) and without
    a line repeating the one before."""
    lines: list[str] = []
    for line in str(error).splitlines():
        if line.strip() and not _NOISE.match(line) and (not lines or line.strip() != lines[-1].strip()):
            lines.append(line.rstrip())
    return "\n".join(lines) or str(error)


class OptionErrorsCLI:
    """A LightningCLI mixin (listed before ``LightningCLI``): its parsers raise ``ArgumentError`` instead of
    printing the whole usage, YAML with a repeated key is refused, and a ``ValueError`` (or Lightning's
    ``MisconfigurationException``) raised while the model, data, loggers, callbacks and trainer are built
    becomes an ``OptionError`` carrying the constructor's own message."""

    def init_parser(self, **kwargs: Any) -> Any:
        from infoae_pl.yaml_loading import install_for_jsonargparse

        install_for_jsonargparse()
        return super().init_parser(**{"exit_on_error": False, **kwargs})  # type: ignore[misc]

    def instantiate_classes(self) -> None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        try:
            super().instantiate_classes()  # type: ignore[misc]
        except (ValueError, MisconfigurationException) as error:
            if isinstance(error, OptionError):
                raise
            raise OptionError(short_message(root_cause(error))) from error


__all__ = ["OptionError", "OptionErrorsCLI", "root_cause", "short_message"]  # OptionError: from validation

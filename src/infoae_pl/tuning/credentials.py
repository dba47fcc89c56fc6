"""Database passwords stay in memory: never in a file, a log line, a W&B record or a worker's command line.

W&B records the command line (``sys.argv``, which spawned workers inherit) in every run, so a URL
given with ``--storage`` is masked there before any run starts, and messages show URLs only through
:func:`redact`. The operating system's copy of the command line stays readable by other users of
the machine (``ps``), so on a shared machine the URL is given as ``env:NAME``, read from the
environment variable NAME (or without its password, which libpq then reads from ``~/.pgpass``).
"""

from __future__ import annotations

import os
import re
import sys

from infoae_pl.tuning.spec import StudySpecError

ENV_PREFIX = "env:"
_PASSWORD_IN_URL = re.compile(r"(?P<keep>\b[A-Za-z][\w+.-]*://[^:/@\s]*:)[^@\s]*(?=@)")
_PASSWORD_IN_QUERY = re.compile(r"(?P<keep>[?&]password=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it (``user:PASSWORD@`` or ``?password=``) shown as ``***``."""
    return _PASSWORD_IN_QUERY.sub(r"\g<keep>***", _PASSWORD_IN_URL.sub(r"\g<keep>***", text))


def resolve(storage: str) -> str:
    """The URL or journal path ``storage`` names: ``env:NAME`` is the value of the environment variable NAME."""
    if not storage.startswith(ENV_PREFIX):
        return storage
    name = storage[len(ENV_PREFIX) :]
    value = os.environ.get(name, "").strip()
    if not value:
        raise StudySpecError(f"storage {storage!r}: the environment variable {name!r} is not set; "
                             f"export {name}=postgresql://USER:PASSWORD@HOST/DB")
    return value


def hide_passwords_in_argv() -> bool:
    """Mask the URL passwords in ``sys.argv`` (what W&B records and spawned workers inherit); True if any."""
    masked = [redact(arg) for arg in sys.argv]
    found = masked != sys.argv
    sys.argv[:] = masked
    return found

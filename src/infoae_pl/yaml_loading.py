"""Strict YAML for configs and studies: a file that is not UTF-8 text, not YAML, or that gives one key
twice is refused with the file, the line and the reason, never read half-way or silently resolved.

PyYAML keeps the last of two equal keys, so ``beta: 0.2`` followed later by ``beta: 5`` trains with
5 without a word; :class:`StrictSafeLoader` raises instead. :func:`install_for_jsonargparse` puts the
same check in front of jsonargparse's loader, which reads LightningCLI's ``--config`` files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from infoae_pl.validation import OptionError


class DuplicateKeyError(ConstructorError):
    """A mapping gives the same key twice."""


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises :class:`DuplicateKeyError` on a repeated mapping key (merge keys
    ``<<`` may still be overridden, as YAML intends)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if earlier is not key_node:
                raise DuplicateKeyError(
                    "while constructing a mapping", node.start_mark,
                    f"found key {key!r} a second time (first on line {earlier.start_mark.line + 1}); "
                    "give each key once", key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class ConfigFileError(OptionError):
    """A config or study file that cannot be read as YAML; the message names the file and the reason."""


def load_yaml_file(path: str | Path, what: str, error: type[Exception] = ConfigFileError) -> Any:
    """The content of the YAML file ``path``, read strictly; ``what`` names it in messages (e.g.
    ``"--config"``, ``"study file"``), and problems raise ``error`` with the file, line and reason."""
    try:
        data = Path(path).read_bytes()
    except OSError as problem:
        raise error(f"{what} {str(path)!r} cannot be read: {problem.strerror or problem}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{what} {str(path)!r} is not a YAML text file: byte 0x{data[problem.start]:02x} at offset "
                    f"{problem.start} is not UTF-8 text") from None
    return load_yaml_text(text, f"{what} {str(path)!r}", error)


def load_yaml_text(text: str, source: str, error: type[Exception] = ConfigFileError) -> Any:
    """``text`` read strictly as YAML; problems raise ``error`` naming ``source``, the line and the reason."""
    try:
        return yaml.load(text, Loader=StrictSafeLoader)
    except yaml.YAMLError as problem:
        raise error(f"{source} is not valid YAML: {_describe(problem)}") from None


def _describe(problem: yaml.YAMLError) -> str:
    """One line for a PyYAML error: what went wrong and where (1-based line and column)."""
    if not isinstance(problem, yaml.MarkedYAMLError):
        return str(problem).splitlines()[0]
    mark = problem.problem_mark or problem.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    what = problem.problem or problem.context or "unreadable"
    if problem.context and problem.problem and not isinstance(problem, DuplicateKeyError):
        what = f"{problem.problem} {problem.context}"
    return f"{what}{where}"


def install_for_jsonargparse() -> None:
    """Make jsonargparse (the parser of LightningCLI) refuse repeated keys in every YAML it reads:
    ``--config`` files, nested config files and YAML given as option values. Idempotent."""
    from jsonargparse import get_loader, set_loader

    loader = get_loader("yaml")
    if getattr(loader, "refuses_duplicate_keys", False):
        return

    def strict(text: str) -> Any:
        try:
            yaml.load(text, Loader=StrictSafeLoader)
        except DuplicateKeyError as problem:
            raise ConfigFileError(f"YAML with a repeated key: {_describe(problem)}") from None
        except yaml.YAMLError:
            pass  # jsonargparse decides what an unparsable value means (often: a plain string)
        return loader(text)

    strict.refuses_duplicate_keys = True  # type: ignore[attr-defined]
    set_loader("yaml", strict, (yaml.YAMLError,))


__all__ = ["ConfigFileError", "DuplicateKeyError", "StrictSafeLoader", "install_for_jsonargparse", "load_yaml_file",
           "load_yaml_text"]

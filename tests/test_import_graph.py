"""The package's modules import each other without a cycle.

The graph is read from the sources with ``ast``: every ``import`` and ``from ... import``, at module
level or inside a function. ``from infoae_pl.x import y`` is an edge to ``infoae_pl.x`` and, when
``y`` is a submodule, to ``infoae_pl.x.y`` too; importing a package is an edge to its ``__init__``,
also from one of its own submodules. A cycle is printed as the chain of modules that closes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "infoae_pl"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import's module."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imports_of(module: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` (a package's ``__init__`` if ``is_package``) imports
    anywhere in its ``source``."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node.level, node.module)
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != module}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {module: imports_of(module, path.read_text(), path.name == "__init__.py", set(files))
            for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor):], successor]
            if successor not in state and (cycle := visit(successor)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "infoae_pl.tuning.spec" in graph["infoae_pl.tuning.sweep"]  # module level, absolute
    assert "infoae_pl.tuning.cli" in graph["infoae_pl.cli"]  # inside a function
    assert "infoae_pl.objectives.compiler" in graph["infoae_pl.objectives.cli"]
    assert "infoae_pl.evaluation" in graph["infoae_pl.tuning.batched"]  # a package: its __init__
    assert "infoae_pl.evaluation.sampling" in graph["infoae_pl.reproduce.families"]


def test_relative_function_level_and_submodule_imports_are_edges():
    known = {"infoae_pl", "infoae_pl.a", "infoae_pl.a.b", "infoae_pl.a.c", "infoae_pl.d", "infoae_pl.d.e"}
    source = "from . import c\nfrom ..d import e, NAME\n\ndef f():\n    from infoae_pl.a import c\n"
    assert imports_of("infoae_pl.a.b", source, False, known) == {"infoae_pl.a", "infoae_pl.a.c", "infoae_pl.d",
                                                                 "infoae_pl.d.e"}
    # a package's __init__ importing a submodule lazily, and a submodule importing its package's names
    assert imports_of("infoae_pl.a", "def __getattr__(n):\n    from .b import X\n", True, known) == {"infoae_pl.a.b"}
    assert imports_of("infoae_pl.a.c", "from infoae_pl.a import X\nimport infoae_pl\n", False, known) == {
        "infoae_pl.a", "infoae_pl"}


def test_find_cycle_reports_the_chain():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


#: The layers of docs/ARCHITECTURE.md, top first: a module imports only its own layer and those below.
LAYERS = ["cli", "reproduce", "tuning", "training", "precision", "rng_isolation", "preemption", "quiet", "readable_output", "errors", "loggers", "evaluation",
          "models", "nets", "divergences", "data", "objectives", "shipped", "yaml_loading", "_compat", "validation",
          "plotting"]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_flow_down_the_documented_layers():
    graph = import_graph()
    unlisted = sorted({_layer(m) for m in graph} - {None, *LAYERS})
    assert not unlisted, f"add {unlisted} to LAYERS and to docs/ARCHITECTURE.md"
    upward = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if _layer(m) and _layer(t) and LAYERS.index(_layer(t)) < LAYERS.index(_layer(m))]
    assert not upward, "imports against the documented layers: " + ", ".join(sorted(upward))

"""An independent float model of the appendix's vector space, for cross-checking the exact algebra.

Written from the paper without the package's tables: term names are expanded by pattern matching,
spans are compared with ``numpy.linalg.matrix_rank``.  Coordinates are (expectation, density,
variables) triples for the atoms, then one coordinate per term without an atom expansion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np

VARIABLES = ("x,z", "x|z", "z|x", "x", "z")
ATOM_KEYS = [(e, d, v) for e in "pq" for d in "pq" for v in VARIABLES]

_MI = re.compile(r"I_([pq])")
_KL = re.compile(r"KL\(([pq])\(([^()]*)\)\|\|([pq])\(\2\)\)")
_ATOM = re.compile(r"E_([pq])\[log ([pq])\(([^()]*)\)\]")
_GENERIC = re.compile(r"(D|JS|MMD)\(([pq])\(([^()]*)\)\|\|([pq])\(\3\)\)")


def expand(name: str) -> dict[tuple[str, str, str], float] | None:
    """Atom expansion of a term or toolbox atom, or None for a term that has none."""
    if m := _MI.fullmatch(name):
        d = m[1]
        return {(d, d, "x,z"): 1.0, (d, d, "x"): -1.0, (d, d, "z"): -1.0}
    if m := _KL.fullmatch(name):
        first, variables, second = m[1], m[2], m[3]
        return {(first, first, variables): 1.0, (first, second, variables): -1.0}
    if m := _ATOM.fullmatch(name):
        return {(m[1], m[2], m[3]): 1.0}
    return None


def transformations() -> list[dict[tuple[str, str, str], float]]:
    """Definition 8 written out: chain rules under E_p and E_q, and the two constant entropies."""
    out = []
    for e in "pq":
        for d in "pq":
            out.append({(e, d, "x,z"): 1.0, (e, d, "x"): -1.0, (e, d, "z|x"): -1.0})
            out.append({(e, d, "x,z"): 1.0, (e, d, "z"): -1.0, (e, d, "x|z"): -1.0})
    out.append({("q", "q", "x"): 1.0})
    out.append({("p", "p", "z"): 1.0})
    return out


def toolbox_members(level: int) -> list[str]:
    """KL toolbox terms of level 0 (likelihood-based), 1 (unary) or 2 (binary)."""
    names = [f"E_{e}[log {t}]" for e in "pq" for t in ("p(x|z)", "p(x,z)", "p(z)", "q(z|x)")]
    if level >= 1:
        names += [f"KL({a}({v})||{b}({v}))" for v in ("x", "z") for a, b in ("pq", "qp")]
    if level >= 2:
        names += [f"KL({a}(x,z)||{b}(x,z))" for a, b in ("pq", "qp")]
    return names


def generic_level(name: str) -> int | None:
    """Smallest toolbox level estimating a non-KL divergence, None when no toolbox does."""
    m = _GENERIC.fullmatch(name)
    if m is None:
        return None
    return {"x": 1, "z": 1, "x,z": 2}.get(m[3])


class Space:
    """Float coordinates over the atoms plus the given opaque names."""

    def __init__(self, opaque: Iterable[str]) -> None:
        self.keys: list[object] = [*ATOM_KEYS, *opaque]
        self.index = {k: i for i, k in enumerate(self.keys)}

    def vec(self, entries: Mapping[object, float]) -> np.ndarray:
        v = np.zeros(len(self.keys))
        for k, c in entries.items():
            v[self.index[k]] += c
        return v

    def term(self, name: str) -> np.ndarray:
        expansion = expand(name)
        return self.vec({name: 1.0} if expansion is None else expansion)

    def combination(self, coefficients: Mapping[str, float]) -> np.ndarray:
        return sum((float(c) * self.term(n) for n, c in coefficients.items()), np.zeros(len(self.keys)))

    def p_matrix(self) -> np.ndarray:
        return np.array([self.vec(t) for t in transformations()]).T

    def toolbox_matrix(self, level: int, opaque: Iterable[str]) -> np.ndarray:
        columns = [self.term(n) for n in toolbox_members(level)]
        columns += [self.term(n) for n in opaque if (g := generic_level(n)) is not None and g <= level]
        return np.array(columns).T


def rank(matrix: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(matrix, tol=1e-9))


def in_span(matrix: np.ndarray, v: np.ndarray) -> bool:
    return rank(np.column_stack([matrix, v])) == rank(matrix)

"""Exact linear algebra over the rationals (``fractions.Fraction``) for the objective algebra.

The spaces involved are tiny (at most a few dozen coordinates), so plain Gaussian elimination on
Python Fractions is fast enough and gives exact ranks, memberships and solutions: no tolerances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction

Vector = tuple[Fraction, ...]


def combine(n: int, weighted: Iterable[tuple[Fraction, Sequence[Fraction]]]) -> Vector:
    """Return ``sum(c * v for c, v in weighted)`` as a length-``n`` vector."""
    out = [Fraction(0)] * n
    for c, v in weighted:
        if c:
            for i, x in enumerate(v):
                if x:
                    out[i] += c * x
    return tuple(out)


class EchelonBasis:
    """A subspace of Q^n kept in reduced row echelon form, built one vector at a time.

    ``reduce`` returns the unique normal form of a vector modulo the subspace (zero at every
    pivot), so two vectors are equivalent modulo the subspace exactly when their normal forms agree.
    """

    def __init__(self, n: int, vectors: Iterable[Sequence[Fraction]] = ()) -> None:
        self.n = n
        self._rows: list[list[Fraction]] = []
        self._pivots: list[int] = []
        for v in vectors:
            self.add(v)

    @property
    def dimension(self) -> int:
        """Dimension of the subspace spanned so far."""
        return len(self._rows)

    def reduce(self, v: Sequence[Fraction]) -> list[Fraction]:
        """Normal form of ``v`` modulo the subspace."""
        if len(v) != self.n:
            raise ValueError(f"expected a vector of length {self.n}, got {len(v)}")
        r = [Fraction(x) for x in v]
        for row, p in zip(self._rows, self._pivots):
            c = r[p]
            if c:
                for i in range(p, self.n):
                    if row[i]:
                        r[i] -= c * row[i]
        return r

    def contains(self, v: Sequence[Fraction]) -> bool:
        """Whether ``v`` lies in the subspace."""
        return not any(self.reduce(v))

    def add(self, v: Sequence[Fraction]) -> bool:
        """Add ``v`` to the spanning set; return whether it enlarged the subspace."""
        r = self.reduce(v)
        p = next((i for i, x in enumerate(r) if x), None)
        if p is None:
            return False
        lead = r[p]
        r = [x / lead for x in r]
        for row in self._rows:
            c = row[p]
            if c:
                for i in range(p, self.n):
                    if r[i]:
                        row[i] -= c * r[i]
        self._rows.append(r)
        self._pivots.append(p)
        return True


def rank(n: int, vectors: Iterable[Sequence[Fraction]]) -> int:
    """Exact rank of a family of length-``n`` vectors."""
    return EchelonBasis(n, vectors).dimension


def solve(columns: Sequence[Sequence[Fraction]], target: Sequence[Fraction]) -> list[Fraction] | None:
    """Return ``x`` with ``sum(x[j] * columns[j]) == target`` exactly, or None when there is none.

    When the columns are dependent the free unknowns are set to zero, so the answer is
    deterministic; when they are independent it is the unique solution.
    """
    n, m = len(target), len(columns)
    rows = [[Fraction(col[i]) for col in columns] + [Fraction(target[i])] for i in range(n)]
    pivots: list[int] = []
    r = 0
    for j in range(m):
        k = next((i for i in range(r, n) if rows[i][j]), None)
        if k is None:
            continue
        rows[r], rows[k] = rows[k], rows[r]
        lead = rows[r][j]
        rows[r] = [x / lead for x in rows[r]]
        for i in range(n):
            c = rows[i][j]
            if i != r and c:
                rows[i] = [a - c * b for a, b in zip(rows[i], rows[r])]
        pivots.append(j)
        r += 1
        if r == n:
            break
    if any(rows[i][m] for i in range(r, n)):
        return None
    x = [Fraction(0)] * m
    for i, j in enumerate(pivots):
        x[j] = rows[i][m]
    return x

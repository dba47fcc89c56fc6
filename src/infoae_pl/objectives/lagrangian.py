"""Lagrangians of the Information-Autoencoding family (Definition 5) as exact term -> coefficient maps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction

from infoae_pl.objectives._linalg import Vector
from infoae_pl.objectives.basis import DIM
from infoae_pl.objectives.terms import (
    OPAQUE_TERMS,
    TERMS,
    CoefficientLike,
    as_coefficient,
    extended_combination,
    format_formula,
    normalize_name,
    parse_term,
)

#: Definition 5's constraint sets, as the variable groups whose divergences they require.
CONSTRAINT_SETS: dict[str, tuple[str, ...]] = {
    "C1": ("x,z",),
    "C2": ("x", "z|x"),
    "C3": ("z", "x|z"),
}
_SET_WORDS = {
    "C1": "a divergence between the joints",
    "C2": "a divergence between the x marginals and one between the z|x conditionals",
    "C3": "a divergence between the z marginals and one between the x|z conditionals",
}


@dataclass(frozen=True)
class Membership:
    """Whether a Lagrangian belongs to the Info-Autoencoding family, which constraint set it uses, and why."""

    member: bool
    constraint_set: str | None
    reason: str


class Lagrangian(Mapping[str, Fraction]):
    """An objective ``sum(coefficient * term)`` over the term vocabulary of :mod:`.terms`.

    Coefficients are stored as exact Fractions (see :func:`.terms.as_coefficient`); zero
    coefficients are dropped and whitespace in names is ignored.  An unknown name raises
    ValueError listing the valid ones.  Immutable; ``+`` adds two Lagrangians.
    """

    def __init__(self, terms: Mapping[str, CoefficientLike] | None = None) -> None:
        coefficients: dict[str, Fraction] = {}
        for name, value in (terms or {}).items():
            canonical = normalize_name(name)
            coefficients[canonical] = coefficients.get(canonical, Fraction(0)) + as_coefficient(value)
        self._terms = {n: c for n, c in coefficients.items() if c}

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Lagrangian:
        """Build from ``NAME=COEFFICIENT`` strings such as ``'I_q=-0.5'``; a repeated name is an error."""
        terms: dict[str, Fraction] = {}
        for spec in specs:
            name, value = parse_term(spec)
            if name in terms:
                raise ValueError(f"term {name!r} given twice")
            terms[name] = value
        return cls(terms)

    def __getitem__(self, name: str) -> Fraction:
        return self._terms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __add__(self, other: Lagrangian) -> Lagrangian:
        if not isinstance(other, Lagrangian):
            return NotImplemented
        total = dict(self._terms)
        for name, c in other.items():
            total[name] = total.get(name, Fraction(0)) + c
        return Lagrangian(total)

    def __str__(self) -> str:
        return format_formula(self._terms)

    def __repr__(self) -> str:
        return f"Lagrangian({str(self)!r})"

    def vector(self) -> Vector:
        """Coordinates over the 20 atoms of :data:`.basis.BASIS` (opaque terms have none; see ``opaque_terms``)."""
        return self.extended_vector()[:DIM]

    def opaque_terms(self) -> dict[str, Fraction]:
        """The terms without an expansion in the 20 atoms (eq. 17 KLs, non-KL divergences)."""
        return {n: c for n, c in self._terms.items() if n in OPAQUE_TERMS}

    def extended_vector(self) -> Vector:
        """Coordinates over the 20 atoms followed by one coordinate per opaque term."""
        return extended_combination(self._terms)

    def membership(self) -> Membership:
        """Definition 5: every divergence has a positive multiplier and those contain C1, C2 or C3.

        The constraint set reported is the first of C1, C2, C3 contained in the divergences with
        positive multipliers; mutual-information terms may have any sign.
        """
        positive = {TERMS[n].pair for n, c in self._terms.items() if TERMS[n].is_divergence and c > 0}
        found = next((s for s, pairs in CONSTRAINT_SETS.items() if set(pairs) <= positive), None)
        negative = [n for n, c in self._terms.items() if TERMS[n].is_divergence and c < 0]
        if negative:
            reason = f"divergence multipliers must be positive; negative: {', '.join(negative)}"
            return Membership(False, found, reason)
        if found is None:
            wanted = "; or ".join(f"{s}: {w}" for s, w in _SET_WORDS.items())
            return Membership(
                False, None, f"no constraint set among the positive divergences (needs {wanted})"
            )
        return Membership(True, found, f"contains {found}: {_SET_WORDS[found]}")

    @property
    def is_member(self) -> bool:
        """Whether the Lagrangian is in the Info-Autoencoding family (Definition 5)."""
        return self.membership().member

    @property
    def constraint_set(self) -> str | None:
        """The first of ``"C1"``, ``"C2"``, ``"C3"`` contained in the positive divergence terms, or None."""
        return self.membership().constraint_set

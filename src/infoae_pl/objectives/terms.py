"""The vocabulary of Lagrangian terms, exact coefficients and the ``NAME=COEFFICIENT`` syntax.

Three groups of names:

* the twelve terms of the KL Information-Autoencoding family (appendix eq. 16, the names of docs/ARCHITECTURE.md):
  ``I_p``, ``I_q`` and ten KL divergences.  A conditional KL takes its expectation under the
  distribution named first (footnote 5), e.g. ``KL(q(x|z)||p(x|z))`` is E_q(z)[KL(q(x|z)||p(x|z))].
  Each expands exactly into the 20 atoms of :mod:`infoae_pl.objectives.basis`.
* the four conditional KLs of eq. 17, whose expectation is taken under the *other* distribution,
  written with the expectation explicit: ``E_q[KL(p(z|x)||q(z|x))]``.  They are members of the
  family (r(x) = q(x) in Definition 5) but average under q(x)p(z|x), which is neither E_p nor E_q,
  so they have no expansion in the 20 atoms and are never tractable.
* non-KL strict divergences ("any strict divergence" of Definition 5 and section 2.5):
  ``D(...)`` (unspecified), ``JS(...)`` (adversarial Jensen-Shannon) and ``MMD(...)`` over the
  same ten (pair, direction) choices as the KLs, e.g. ``MMD(p(z)||q(z))``.  They do not decompose
  into log-densities, so elementary transformations cannot touch them: each is an opaque
  coordinate of its own.  One between marginals is a unary likelihood-free toolbox term, one
  between joints a binary one, one between conditionals is in no toolbox.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from infoae_pl.objectives._linalg import Vector, combine
from infoae_pl.objectives.basis import DIM, atom_vector

CoefficientLike = Fraction | int | float | str

#: Variable groups a divergence can compare: joints, the two marginals, the two conditionals.
PAIRS: tuple[str, ...] = ("x,z", "x", "z", "z|x", "x|z")
#: Non-KL strict divergences accepted as terms: unspecified, Jensen-Shannon, maximum mean discrepancy.
GENERIC_DIVERGENCES: tuple[str, ...] = ("D", "JS", "MMD")


@dataclass(frozen=True)
class Term:
    """One Lagrangian term: what it measures, under which expectation, and its atom expansion.

    ``divergence`` is None for a mutual information, else ``"KL"`` or one of
    :data:`GENERIC_DIVERGENCES`; ``pair`` is one of :data:`PAIRS` (``"x;z"`` for a mutual
    information); ``vector`` is None for terms without an expansion in the 20 atoms (opaque terms).
    """

    name: str
    divergence: str | None
    pair: str
    first: str
    expectation: str
    vector: Vector | None

    @property
    def is_divergence(self) -> bool:
        """Whether the term is a divergence (a constraint of Definition 5) rather than an MI."""
        return self.divergence is not None


def _kl_vector(pair: str, first: str) -> Vector:
    second = "q" if first == "p" else "p"
    return atom_vector(first, {f"log {first}({pair})": 1, f"log {second}({pair})": -1})


def _divergence(kind: str, pair: str, first: str) -> str:
    second = "q" if first == "p" else "p"
    return f"{kind}({first}({pair})||{second}({pair}))"


def _vocabulary() -> dict[str, Term]:
    terms: dict[str, Term] = {}
    for d in ("p", "q"):
        name = f"I_{d}"
        vector = atom_vector(d, {f"log {d}(x,z)": 1, f"log {d}(x)": -1, f"log {d}(z)": -1})
        terms[name] = Term(name, None, "x;z", d, d, vector)
    for pair in PAIRS:
        for first in ("p", "q"):
            name = _divergence("KL", pair, first)
            terms[name] = Term(name, "KL", pair, first, first, _kl_vector(pair, first))
    for pair in ("z|x", "x|z"):
        for first in ("p", "q"):
            other = "q" if first == "p" else "p"
            name = f"E_{other}[{_divergence('KL', pair, first)}]"
            terms[name] = Term(name, "KL", pair, first, other, None)
    for kind in GENERIC_DIVERGENCES:
        for pair in PAIRS:
            for first in ("p", "q"):
                name = _divergence(kind, pair, first)
                terms[name] = Term(name, kind, pair, first, first, None)
    return terms


#: Every accepted term name, in a fixed order (the twelve KL-family terms first).
TERMS: dict[str, Term] = _vocabulary()
#: The twelve terms of appendix eq. (16), named as in docs/ARCHITECTURE.md.
LAGRANGIAN_TERMS: tuple[str, ...] = tuple(name for name, t in TERMS.items() if t.vector is not None)
#: Terms without an expansion in the 20 atoms (eq. 17 KLs and non-KL divergences), in a fixed order.
OPAQUE_TERMS: tuple[str, ...] = tuple(name for name, t in TERMS.items() if t.vector is None)
_OPAQUE_INDEX = {name: DIM + i for i, name in enumerate(OPAQUE_TERMS)}
#: Dimension of the extended space: the 20 atoms plus one coordinate per opaque term.
EXTENDED_DIM = DIM + len(OPAQUE_TERMS)


def valid_names_message() -> str:
    """A readable list of every accepted term name, for error messages."""
    eq17 = [n for n in OPAQUE_TERMS if TERMS[n].divergence == "KL"]
    generic = [n for n in OPAQUE_TERMS if TERMS[n].divergence != "KL"]
    return (
        "valid terms: "
        + ", ".join(LAGRANGIAN_TERMS)
        + "; conditional KLs under the other expectation (eq. 17): "
        + ", ".join(eq17)
        + "; non-KL strict divergences: "
        + ", ".join(generic)
    )


def normalize_name(name: str) -> str:
    """Canonical spelling of a term name (whitespace removed); ValueError listing valid names if unknown."""
    canonical = re.sub(r"\s+", "", name)
    if canonical not in TERMS:
        raise ValueError(f"unknown term {name!r}; {valid_names_message()}")
    return canonical


def extended_vector(name: str) -> Vector:
    """A term's vector in the extended space: atom expansion, or a unit opaque coordinate."""
    term = TERMS[name]
    if term.vector is not None:
        return term.vector + (Fraction(0),) * len(OPAQUE_TERMS)
    v = [Fraction(0)] * EXTENDED_DIM
    v[_OPAQUE_INDEX[name]] = Fraction(1)
    return tuple(v)


def extended_combination(coefficients: Mapping[str, Fraction]) -> Vector:
    """The extended-space vector of ``sum(c * term)`` over term names."""
    return combine(EXTENDED_DIM, ((c, extended_vector(n)) for n, c in coefficients.items()))


def as_coefficient(value: CoefficientLike) -> Fraction:
    """Convert a coefficient to an exact Fraction.

    Integers and Fractions are kept as they are; a float becomes the decimal it prints as
    (``0.1`` -> 1/10, and ``float()`` of the result gives the same float back); strings may be
    ``"3"``, ``"-0.5"``, ``"1e-3"`` or ``"1/3"``.  Booleans, NaN and infinities are rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"a coefficient must be a number, got {value!r}")
    if isinstance(value, numbers.Rational):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a coefficient must be finite, got {value!r}")
        return Fraction(repr(float(value)))
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"not a number: {value!r} (use e.g. 2, -0.5, 1e-3 or 1/3)") from None
    raise ValueError(f"a coefficient must be an int, float, Fraction or numeric string, got {value!r}")


def parse_term(spec: str) -> tuple[str, Fraction]:
    """Parse ``"NAME=COEFFICIENT"``, e.g. ``parse_term("KL(q(z)||p(z))=1.5") == ("KL(q(z)||p(z))", 3/2)``."""
    name, sep, value = spec.rpartition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(
            f"expected NAME=COEFFICIENT (e.g. 'I_q=-0.5'), got {spec!r}; {valid_names_message()}"
        )
    return normalize_name(name), as_coefficient(value)


def format_number(c: Fraction) -> str:
    """Shortest exact spelling: ``2``, ``-0.5``, ``0.125`` for terminating decimals, else ``1/3``."""
    if c.denominator == 1:
        return str(c.numerator)
    d = c.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return f"{c.numerator}/{c.denominator}"
    places = max(twos, fives)
    scaled = c * 10**places
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled.numerator)).rjust(places + 1, "0")
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def format_formula(coefficients: Mapping[str, Fraction]) -> str:
    """A readable signed sum, e.g. ``-E_q[log p(x|z)] + 0.5*E_q[log q(z|x)]``; ``0`` when empty."""
    parts: list[str] = []
    for name, c in coefficients.items():
        if not c:
            continue
        magnitude = abs(c)
        body = name if magnitude == 1 else f"{format_number(magnitude)}*{name}"
        if not parts:
            parts.append(f"-{body}" if c < 0 else body)
        else:
            parts.append(f"- {body}" if c < 0 else f"+ {body}")
    return " ".join(parts) if parts else "0"

"""The three tractability toolboxes (Definition 7, as counted in appendix B) and their spans.

* likelihood-based: T1, the eight ``E_*[log p(x|z)]``, ``E_*[log p(x,z)]``, ``E_*[log p(z)]``,
  ``E_*[log q(z|x)]``;
* unary likelihood-free: T1 plus the four KLs between marginals (both directions, for x and for
  z, as the appendix's T_ulf; Definition 7 lists only two, but the table's 17 needs four);
* binary likelihood-free: the unary toolbox plus the two joint KLs.

A non-KL divergence (``D``/``JS``/``MMD``) between marginals belongs to the unary toolbox and one
between joints to the binary toolbox, like the KL of the same pair: the paper lets any strict
divergence be estimated likelihood-free.  Conditionals are in no toolbox.

Each toolbox lists its terms in order of preference; the compiler expresses objectives over the
greedy basis that this order picks modulo the elementary transformations, so the tractable form
is canonical (equal for equivalent Lagrangians) and uses the paper's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache

from infoae_pl.objectives._linalg import EchelonBasis, Vector
from infoae_pl.objectives.basis import BASIS, DIM, TRANSFORMATIONS, basis_vector
from infoae_pl.objectives.terms import EXTENDED_DIM, GENERIC_DIVERGENCES, OPAQUE_TERMS, TERMS, extended_vector

#: T1 in order of preference: the E_q terms of the beta-ELBO first, E_p[log q(z|x)] of VMI/InfoGAN,
#: then the redundant ones (E_*[log p(x,z)] and E_p[log p(z)] are combinations of the others
#: modulo elementary transformations, so the canonical forms never use them).
LIKELIHOOD_TERMS: tuple[str, ...] = (
    "E_q[log p(x|z)]",
    "E_q[log q(z|x)]",
    "E_q[log p(z)]",
    "E_p[log q(z|x)]",
    "E_p[log p(x|z)]",
    "E_q[log p(x,z)]",
    "E_p[log p(x,z)]",
    "E_p[log p(z)]",
)
MARGINAL_KL_TERMS: tuple[str, ...] = (
    "KL(q(x)||p(x))",
    "KL(p(x)||q(x))",
    "KL(q(z)||p(z))",
    "KL(p(z)||q(z))",
)
JOINT_KL_TERMS: tuple[str, ...] = ("KL(p(x,z)||q(x,z))", "KL(q(x,z)||p(x,z))")


def _generic(pairs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        n for n in OPAQUE_TERMS if TERMS[n].divergence in GENERIC_DIVERGENCES and TERMS[n].pair in pairs
    )


@dataclass(frozen=True)
class Toolbox:
    """A tractability class: its name and the terms it can compute, in order of preference.

    ``kl_terms`` are the terms with an atom expansion (the appendix's T matrix); ``generic_terms``
    the non-KL divergences it can estimate likelihood-free.
    """

    name: str
    kl_terms: tuple[str, ...]
    generic_terms: tuple[str, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """All toolbox terms, in order of preference."""
        return self.kl_terms + self.generic_terms

    def atom_columns(self) -> list[Vector]:
        """The KL toolbox terms as vectors over the 20 atoms (the columns of T_lb, T_ulf or T_blf)."""
        return [toolbox_term_vector(n)[:DIM] for n in self.kl_terms]


LIKELIHOOD_BASED = Toolbox("likelihood-based", LIKELIHOOD_TERMS, ())
UNARY_LIKELIHOOD_FREE = Toolbox(
    "unary-likelihood-free", LIKELIHOOD_TERMS + MARGINAL_KL_TERMS, _generic(("x", "z"))
)
BINARY_LIKELIHOOD_FREE = Toolbox(
    "binary-likelihood-free",
    LIKELIHOOD_TERMS + MARGINAL_KL_TERMS + JOINT_KL_TERMS,
    _generic(("x", "z", "x,z")),
)
#: The toolboxes from the smallest to the largest; each contains the previous one.
TOOLBOXES: tuple[Toolbox, ...] = (LIKELIHOOD_BASED, UNARY_LIKELIHOOD_FREE, BINARY_LIKELIHOOD_FREE)
INTRACTABLE = "intractable"
#: Every possible result of :func:`infoae_pl.objectives.compile`, smallest toolbox first.
TRACTABILITY_CLASSES: tuple[str, ...] = (*(t.name for t in TOOLBOXES), INTRACTABLE)


def toolbox_term_vector(name: str) -> Vector:
    """A toolbox term (a basis element of T1, or a term name) in the extended space."""
    if name in BASIS:
        return basis_vector(name) + (Fraction(0),) * (EXTENDED_DIM - DIM)
    return extended_vector(name)


def transformation_columns() -> list[Vector]:
    """The ten elementary transformations (the appendix's P) in the extended space."""
    return [v + (Fraction(0),) * (EXTENDED_DIM - DIM) for v in TRANSFORMATIONS.values()]


@cache
def transformation_span() -> EchelonBasis:
    """The span P of the elementary transformations, in the extended space (shared: only reduce with it)."""
    return EchelonBasis(EXTENDED_DIM, transformation_columns())


@cache
def canonical_basis(toolbox: Toolbox) -> tuple[str, ...]:
    """The toolbox terms kept by a greedy pass in preference order, independent modulo P.

    Every objective in span(toolbox) + P has exactly one expression over these terms modulo P.
    """
    span = EchelonBasis(EXTENDED_DIM, transformation_columns())
    return tuple(n for n in toolbox.terms if span.add(toolbox_term_vector(n)))


@cache
def toolbox_span(toolbox: Toolbox) -> EchelonBasis:
    """span(toolbox terms) + P in the extended space (shared: only query it)."""
    return EchelonBasis(
        EXTENDED_DIM, transformation_columns() + [toolbox_term_vector(n) for n in toolbox.terms]
    )

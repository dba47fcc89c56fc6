"""Compile a Lagrangian into its tractability class and an equivalent objective over toolbox terms.

A Lagrangian is tractable in the smallest toolbox whose span plus the span P of the elementary
transformations contains its vector (section 3, appendix B).  The tractable form is the unique
expression over the toolbox's canonical basis (:func:`.toolboxes.canonical_basis`); the
certificate gives the multiple of each elementary transformation that turns one into the other:

    lagrangian == tractable_form + sum(certificate[t] * transformation[t])   (exactly)

Over the 20 atoms the binary toolbox plus P spans everything, so every combination of the twelve
KL-family terms is at worst binary likelihood-free; only opaque terms with no toolbox (the eq. 17
KLs and non-KL divergences between conditionals) make an objective intractable.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from infoae_pl.objectives._linalg import combine, solve
from infoae_pl.objectives.basis import TRANSFORMATIONS
from infoae_pl.objectives.lagrangian import Lagrangian
from infoae_pl.objectives.terms import EXTENDED_DIM, TERMS, extended_vector, format_formula
from infoae_pl.objectives.toolboxes import (
    BINARY_LIKELIHOOD_FREE,
    INTRACTABLE,
    TOOLBOXES,
    canonical_basis,
    toolbox_span,
    toolbox_term_vector,
    transformation_columns,
)


class VerificationError(ArithmeticError):
    """A compiled objective does not reproduce its Lagrangian exactly (a bug, never expected)."""


@dataclass(frozen=True)
class CompiledObjective:
    """The result of :func:`compile`.

    ``tractable_form`` maps toolbox terms to coefficients: the objective the models train, in
    nats.  For an intractable Lagrangian it holds only the part that the binary toolbox covers,
    ``uncovered_terms`` names the terms it cannot cover and ``message`` says why; then
    ``lagrangian == tractable_form + certificate + uncovered_terms``.
    """

    lagrangian: Lagrangian
    tractability_class: str
    tractable_form: dict[str, Fraction]
    certificate: dict[str, Fraction]
    uncovered_terms: tuple[str, ...] = ()
    message: str = ""

    @property
    def is_tractable(self) -> bool:
        """Whether some toolbox computes the objective."""
        return self.tractability_class != INTRACTABLE

    def verify(self) -> None:
        """Check exactly that lagrangian == tractable_form + sum(certificate_i * transformation_i)
        (+ the uncovered terms when intractable); raise VerificationError otherwise."""
        transformations = dict(zip(TRANSFORMATIONS, transformation_columns()))
        rebuilt = combine(
            EXTENDED_DIM,
            [(c, toolbox_term_vector(n)) for n, c in self.tractable_form.items()]
            + [(c, transformations[n]) for n, c in self.certificate.items()]
            + [(self.lagrangian[n], extended_vector(n)) for n in self.uncovered_terms],
        )
        if rebuilt != self.lagrangian.extended_vector():
            raise VerificationError(f"compiled form of {self.lagrangian} does not reproduce it")

    def formula(self) -> str:
        """The tractable form as a readable signed sum."""
        return format_formula(self.tractable_form)


def _uncovered_reason(name: str) -> str:
    term = TERMS[name]
    if term.divergence == "KL":
        second = "q" if term.first == "p" else "p"
        return (
            f"{name} averages log {term.first}({term.pair}) - log {second}({term.pair}) under "
            f"{term.expectation}({term.pair[-1]}){term.first}({term.pair}), neither E_p nor E_q: the "
            "missing atom directions lie outside the 20-atom basis, and no toolbox term or "
            "elementary transformation reaches them (appendix eq. 17)"
        )
    return (
        f"{name} is a non-KL divergence between conditionals: it does not decompose into "
        "log-density atoms and the toolboxes only estimate non-KL divergences between marginals "
        "(unary) or joints (binary)"
    )


def compile(lagrangian: Lagrangian) -> CompiledObjective:
    """Find the smallest toolbox computing ``lagrangian`` and the equivalent objective over its terms.

    The result is verified exactly (:meth:`CompiledObjective.verify`) before it is returned.
    """
    target = lagrangian.extended_vector()
    toolbox = next((t for t in TOOLBOXES if toolbox_span(t).contains(target)), None)
    uncovered: tuple[str, ...] = ()
    message = ""
    if toolbox is None:
        covered = set(BINARY_LIKELIHOOD_FREE.terms)
        uncovered = tuple(n for n in lagrangian.opaque_terms() if n not in covered)
        target = combine(
            EXTENDED_DIM, [(Fraction(1), target)] + [(-lagrangian[n], extended_vector(n)) for n in uncovered]
        )
        message = "intractable: " + "; ".join(_uncovered_reason(n) for n in uncovered)
        toolbox = BINARY_LIKELIHOOD_FREE
    basis = canonical_basis(toolbox)
    columns = [toolbox_term_vector(n) for n in basis]
    solution = solve(columns + transformation_columns(), target)
    if solution is None:
        raise VerificationError(f"{lagrangian} is not in the span of the {toolbox.name} toolbox plus P")
    tractable = {n: c for n, c in zip(basis, solution[: len(basis)]) if c}
    certificate = {n: c for n, c in zip(TRANSFORMATIONS, solution[len(basis) :]) if c}
    compiled = CompiledObjective(
        lagrangian=lagrangian,
        tractability_class=INTRACTABLE if uncovered else toolbox.name,
        tractable_form=tractable,
        certificate=certificate,
        uncovered_terms=uncovered,
        message=message,
    )
    compiled.verify()
    return compiled

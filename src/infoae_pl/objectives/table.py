"""The subspace-dimension table of appendix B, computed exactly from the definitions.

All subspaces live in the 20-dimensional atom space.  R is spanned by the twelve KL-family terms,
P by the ten elementary transformations, T_lb / T_ulf / T_blf by the KL terms of the three
toolboxes, and S_F by all members of the preset family F (as the family is affine in its
parameters, its members at the defaults and at each parameter raised by one span it).  Rows:

1. (S_beta-ELBO + S_VMI) + P      2. (T_lb + P) ∩ (R + P)
3. (S_InfoGAN + S_InfoVAE) + P    4. (T_ulf + P) ∩ (R + P)
5. (S_InfoBiGAN + S_InfoVAE) + P  6. (T_blf + P) ∩ (R + P)

Equal dimensions in rows 1-2, 3-4, 5-6 prove Theorems 1-3, since each S-space lies inside the
intersection next to it.  Intersections use dim(A ∩ B) = dim A + dim B - dim(A + B).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infoae_pl.objectives._linalg import Vector, rank
from infoae_pl.objectives.basis import DIM, TRANSFORMATIONS
from infoae_pl.objectives.presets import preset, preset_parameters
from infoae_pl.objectives.terms import LAGRANGIAN_TERMS, extended_vector
from infoae_pl.objectives.toolboxes import TOOLBOXES, Toolbox


@dataclass(frozen=True)
class SubspaceRow:
    """One row of the table: the subspace's label and its exact dimension."""

    label: str
    dimension: int


def family_span(name: str) -> list[Vector]:
    """Atom vectors spanning every member of a KL preset family (defaults, then each parameter + 1)."""
    defaults = preset_parameters(name)
    members = [preset(name)] + [preset(name, **{p: v + 1}) for p, v in defaults.items()]
    for member in members:
        if member.opaque_terms():
            raise ValueError(f"preset {name!r} has terms outside the 20-atom basis")
    return [m.vector() for m in members]


def lagrangian_span() -> list[Vector]:
    """The twelve KL-family terms as atom vectors (the columns of the appendix's R)."""
    return [extended_vector(n)[:DIM] for n in LAGRANGIAN_TERMS]


def _dim(vectors: Sequence[Vector]) -> int:
    return rank(DIM, vectors)


def _intersection_dim(a: Sequence[Vector], b: Sequence[Vector]) -> int:
    return _dim(a) + _dim(b) - _dim([*a, *b])


def subspace_table() -> tuple[SubspaceRow, ...]:
    """The six rows of the appendix's table (13, 13, 17, 17, 18, 18), computed with exact ranks."""
    p: list[Vector] = list(TRANSFORMATIONS.values())
    r_plus_p = lagrangian_span() + p

    def toolbox_row(label: str, toolbox: Toolbox) -> SubspaceRow:
        return SubspaceRow(
            f"({label} + P) ∩ (R + P)", _intersection_dim(toolbox.atom_columns() + p, r_plus_p)
        )

    def family_row(first: str, second: str, label: str) -> SubspaceRow:
        return SubspaceRow(f"({label}) + P", _dim(family_span(first) + family_span(second) + p))

    lb, ulf, blf = TOOLBOXES
    return (
        family_row("beta_elbo", "vmi", "S_beta-ELBO + S_VMI"),
        toolbox_row("T_lb", lb),
        family_row("infogan", "infovae", "S_InfoGAN + S_InfoVAE"),
        toolbox_row("T_ulf", ulf),
        family_row("infobigan", "infovae", "S_InfoBiGAN + S_InfoVAE"),
        toolbox_row("T_blf", blf),
    )


def format_table(rows: Sequence[SubspaceRow]) -> str:
    """The table as aligned text."""
    width = max(len(r.label) for r in rows)
    lines = [f"{'subspace':<{width}}  dimension"] + [f"{r.label:<{width}}  {r.dimension}" for r in rows]
    return "\n".join(lines)

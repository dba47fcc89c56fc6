"""Appendix B's subspace table, computed exactly and re-derived with an independent float model."""

from __future__ import annotations

import numpy as np

from infoae_pl.objectives import (
    LAGRANGIAN_TERMS,
    TRANSFORMATIONS,
    SubspaceRow,
    format_table,
    preset,
    preset_parameters,
    subspace_table,
)
from infoae_pl.objectives._linalg import rank
from infoae_pl.objectives.table import family_span

from ._independent import Space, toolbox_members

EXPECTED = (
    SubspaceRow("(S_beta-ELBO + S_VMI) + P", 13),
    SubspaceRow("(T_lb + P) ∩ (R + P)", 13),
    SubspaceRow("(S_InfoGAN + S_InfoVAE) + P", 17),
    SubspaceRow("(T_ulf + P) ∩ (R + P)", 17),
    SubspaceRow("(S_InfoBiGAN + S_InfoVAE) + P", 18),
    SubspaceRow("(T_blf + P) ∩ (R + P)", 18),
)


def test_table_matches_the_appendix() -> None:
    assert subspace_table() == EXPECTED
    assert [line.split()[-1] for line in format_table(EXPECTED).splitlines()[1:]] == [
        "13",
        "13",
        "17",
        "17",
        "18",
        "18",
    ]


def test_transformations_are_independent() -> None:
    assert rank(20, TRANSFORMATIONS.values()) == 10


def test_family_spans_contain_every_member() -> None:
    """The presets are affine in their parameters, so defaults and unit steps span each family."""
    for name in ("beta_elbo", "vmi", "infogan", "infovae", "infobigan"):
        span = family_span(name)
        params = {p: v * 3 + 2 for p, v in preset_parameters(name).items()}
        member = preset(name, **{p: v / 7 - 1 for p, v in params.items()}).vector()
        assert rank(20, span) == rank(20, [*span, member])


def test_table_with_the_independent_model() -> None:
    """Same six numbers from float ranks, and each S-space lies in its intersection (so they are equal)."""
    space = Space(())
    p = list(space.p_matrix().T)
    r = [space.term(n) for n in LAGRANGIAN_TERMS]

    def family(name: str) -> list[np.ndarray]:
        defaults = preset_parameters(name)
        members = [preset(name)] + [preset(name, **{k: v + 1}) for k, v in defaults.items()]
        return [space.combination(m) for m in members]

    def dim(vectors: list[np.ndarray]) -> int:
        return int(np.linalg.matrix_rank(np.array(vectors).T, tol=1e-9))

    dims = []
    for level, (first, second) in enumerate(
        [("beta_elbo", "vmi"), ("infogan", "infovae"), ("infobigan", "infovae")]
    ):
        s = family(first) + family(second) + p
        t = [space.term(n) for n in toolbox_members(level)] + p
        intersection = dim(t) + dim(r + p) - dim(t + r + p)
        assert dim(s + t) == dim(t) and dim(s + r + p) == dim(r + p)  # S + P inside both
        dims += [dim(s), intersection]
    assert dims == [13, 13, 17, 17, 18, 18]

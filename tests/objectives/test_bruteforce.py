"""Random Lagrangians: the exact compiler against an independent float model (``_independent``)."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np

from infoae_pl.objectives import (
    LAGRANGIAN_TERMS,
    OPAQUE_TERMS,
    PRESETS,
    TERMS,
    TRACTABILITY_CLASSES,
    Lagrangian,
    compile,
    preset,
    preset_parameters,
)

from ._independent import Space, generic_level, in_span, toolbox_members

CLASSES = TRACTABILITY_CLASSES  # likelihood-based, unary, binary, intractable


def _random_lagrangians(seed: int) -> list[Lagrangian]:
    rng = random.Random(seed)
    names = list(TERMS)
    out = []
    for _ in range(300):
        terms: dict[str, Fraction] = {}
        for _ in range(rng.randint(1, 4)):
            name = rng.choice(LAGRANGIAN_TERMS) if rng.random() < 0.8 else rng.choice(names)
            terms[name] = Fraction(rng.choice([-3, -2, -1, 1, 2, 3, 5]), rng.choice([1, 2, 3]))
        out.append(Lagrangian(terms))
    for _ in range(100):  # sums of presets reach the smaller classes more often
        total = Lagrangian()
        for name in rng.sample(list(PRESETS), rng.randint(1, 2)):
            params = {p: Fraction(rng.randint(-4, 4), rng.randint(1, 3)) for p in preset_parameters(name)}
            total = total + preset(name, **params)
        out.append(total)
    return out


def _expected_class(space: Space, lagrangian: Lagrangian) -> str:
    v = space.combination(lagrangian)
    p = space.p_matrix()
    for level in range(3):
        if in_span(np.column_stack([space.toolbox_matrix(level, OPAQUE_TERMS), p]), v):
            return CLASSES[level]
    return CLASSES[3]


def test_random_lagrangians_match_the_independent_model() -> None:
    space = Space(OPAQUE_TERMS)
    p = space.p_matrix()
    seen = set()
    for lagrangian in _random_lagrangians(seed=20240601):
        compiled = compile(lagrangian)
        compiled.verify()
        expected = _expected_class(space, lagrangian)
        assert compiled.tractability_class == expected, str(lagrangian)
        seen.add(expected)
        level = CLASSES.index(expected)
        allowed = set(toolbox_members(min(level, 2))) | {
            n for n in OPAQUE_TERMS if (g := generic_level(n)) is not None and g <= level
        }
        assert set(compiled.tractable_form) <= allowed, str(lagrangian)
        # lagrangian - tractable form (- uncovered terms) is a combination of transformations.
        rest = space.combination(lagrangian) - space.combination(compiled.tractable_form)
        rest -= space.combination({n: lagrangian[n] for n in compiled.uncovered_terms})
        coefficients, *_ = np.linalg.lstsq(p, rest, rcond=None)
        assert np.allclose(p @ coefficients, rest, atol=1e-9), str(lagrangian)
        if compiled.is_tractable:
            assert not compiled.uncovered_terms
        else:
            assert compiled.uncovered_terms and all(
                generic_level(n) is None for n in compiled.uncovered_terms
            )
    assert seen == set(CLASSES)


def test_every_atom_combination_is_binary_computable() -> None:
    """Over the 20 atoms, the binary toolbox plus P is everything: only opaque terms are intractable."""
    space = Space(())
    matrix = np.column_stack([space.toolbox_matrix(2, ()), space.p_matrix()])
    assert np.linalg.matrix_rank(matrix) == 20

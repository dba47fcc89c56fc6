"""Vocabulary, coefficients, parsing and the Lagrangian container."""

from __future__ import annotations

from fractions import Fraction

import pytest

from infoae_pl.objectives import (
    BASIS,
    LAGRANGIAN_TERMS,
    TERMS,
    TRANSFORMATIONS,
    Lagrangian,
    as_coefficient,
    format_formula,
    format_number,
    parse_term,
)


def test_basis_has_twenty_named_atoms_in_appendix_order() -> None:
    assert len(BASIS) == 20
    assert BASIS[:5] == (
        "E_p[log p(x,z)]",
        "E_p[log p(x|z)]",
        "E_p[log p(z|x)]",
        "E_p[log p(x)]",
        "E_p[log p(z)]",
    )
    assert BASIS[17] == "E_q[log q(z|x)]"


def test_the_twelve_terms_have_the_design_names() -> None:
    assert LAGRANGIAN_TERMS == (
        "I_p",
        "I_q",
        "KL(p(x,z)||q(x,z))",
        "KL(q(x,z)||p(x,z))",
        "KL(p(x)||q(x))",
        "KL(q(x)||p(x))",
        "KL(p(z)||q(z))",
        "KL(q(z)||p(z))",
        "KL(p(z|x)||q(z|x))",
        "KL(q(z|x)||p(z|x))",
        "KL(p(x|z)||q(x|z))",
        "KL(q(x|z)||p(x|z))",
    )


def _as_dict(name: str) -> dict[str, Fraction]:
    vector = TERMS[name].vector
    assert vector is not None
    return {b: c for b, c in zip(BASIS, vector) if c}


def test_term_expansions_follow_the_definitions_and_footnote_5() -> None:
    assert _as_dict("I_q") == {"E_q[log q(x,z)]": 1, "E_q[log q(x)]": -1, "E_q[log q(z)]": -1}
    assert _as_dict("KL(q(z)||p(z))") == {"E_q[log q(z)]": 1, "E_q[log p(z)]": -1}
    assert _as_dict("KL(p(x|z)||q(x|z))") == {"E_p[log p(x|z)]": 1, "E_p[log q(x|z)]": -1}
    assert _as_dict("KL(q(z|x)||p(z|x))") == {"E_q[log q(z|x)]": 1, "E_q[log p(z|x)]": -1}
    assert TERMS["E_q[KL(p(z|x)||q(z|x))]"].vector is None
    assert TERMS["MMD(p(z)||q(z))"].vector is None


def test_ten_elementary_transformations() -> None:
    assert len(TRANSFORMATIONS) == 10
    chain = {
        b: c for b, c in zip(BASIS, TRANSFORMATIONS["E_p[log p(x,z)] = E_p[log p(z) + log p(x|z)]"]) if c
    }
    assert chain == {"E_p[log p(x,z)]": 1, "E_p[log p(z)]": -1, "E_p[log p(x|z)]": -1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, Fraction(2)),
        (0.1, Fraction(1, 10)),
        (-1.5, Fraction(-3, 2)),
        ("1/3", Fraction(1, 3)),
        ("1e-3", Fraction(1, 1000)),
    ],
)
def test_coefficients_are_exact(value: object, expected: Fraction) -> None:
    assert as_coefficient(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "abc", "1/0", None])
def test_bad_coefficients_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        as_coefficient(value)  # type: ignore[arg-type]


def test_parse_term() -> None:
    assert parse_term("KL(q(z)||p(z))=1.5") == ("KL(q(z)||p(z))", Fraction(3, 2))
    assert parse_term(" KL( q(z) || p(z) ) = -2 ") == ("KL(q(z)||p(z))", Fraction(-2))
    with pytest.raises(ValueError, match="NAME=COEFFICIENT"):
        parse_term("I_q")
    with pytest.raises(ValueError, match="not a number"):
        parse_term("I_q=half")


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError) as error:
        Lagrangian({"KL(x||y)": 1})
    message = str(error.value)
    assert "unknown term 'KL(x||y)'" in message
    for name in (*LAGRANGIAN_TERMS, "E_q[KL(p(z|x)||q(z|x))]", "MMD(p(z)||q(z))", "JS(q(x,z)||p(x,z))"):
        assert name in message
    with pytest.raises(ValueError, match="valid terms"):
        parse_term("I_r=1")


def test_lagrangian_container() -> None:
    lagrangian = Lagrangian.parse(["I_q=-0.5", "KL(q(x|z)||p(x|z))=1", "KL(q(z)||p(z))=1.5", "I_p=0"])
    assert dict(lagrangian) == {
        "I_q": Fraction(-1, 2),
        "KL(q(x|z)||p(x|z))": 1,
        "KL(q(z)||p(z))": Fraction(3, 2),
    }
    assert str(lagrangian) == "-0.5*I_q + KL(q(x|z)||p(x|z)) + 1.5*KL(q(z)||p(z))"
    assert lagrangian == Lagrangian({"KL(q(z) || p(z))": 1.5, "I_q": "-1/2", "KL(q(x|z)||p(x|z))": 1})
    assert (lagrangian + Lagrangian({"I_q": 0.5})) == Lagrangian(
        {"KL(q(x|z)||p(x|z))": 1, "KL(q(z)||p(z))": 1.5}
    )
    assert len(lagrangian.vector()) == 20
    assert Lagrangian({"MMD(p(z)||q(z))": 2}).opaque_terms() == {"MMD(p(z)||q(z))": 2}
    with pytest.raises(ValueError, match="given twice"):
        Lagrangian.parse(["I_q=1", "I_q=2"])


def test_formatting() -> None:
    assert [format_number(Fraction(n, d)) for n, d in [(2, 1), (-1, 2), (1, 8), (1, 3), (-7, 20)]] == [
        "2",
        "-0.5",
        "0.125",
        "1/3",
        "-0.35",
    ]
    assert format_formula({}) == "0"
    assert format_formula({"a": Fraction(-1), "b": Fraction(1, 2), "c": Fraction(-3)}) == "-a + 0.5*b - 3*c"

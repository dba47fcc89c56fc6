"""Definition 5: membership in the Info-Autoencoding family and the constraint set used."""

from __future__ import annotations

import pytest

from infoae_pl.objectives import Lagrangian, elbo


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"KL(q(x,z)||p(x,z))": 1}, "C1"),
        ({"JS(p(x,z)||q(x,z))": 2, "I_p": -1}, "C1"),
        ({"KL(q(x)||p(x))": 1, "KL(q(z|x)||p(z|x))": 2, "I_p": -3}, "C2"),
        ({"D(p(x)||q(x))": 1, "E_q[KL(p(z|x)||q(z|x))]": 1}, "C2"),
        ({"KL(p(z)||q(z))": 0.5, "KL(p(x|z)||q(x|z))": 1, "I_q": 7}, "C3"),
        ({"MMD(p(z)||q(z))": 10, "KL(q(x|z)||p(x|z))": 1}, "C3"),
        # Several sets present: the first one is reported.
        ({"KL(q(x,z)||p(x,z))": 1, "KL(q(z)||p(z))": 1, "KL(q(x|z)||p(x|z))": 1}, "C1"),
        ({"KL(q(x)||p(x))": 1, "KL(p(z|x)||q(z|x))": 1, "KL(q(z)||p(z))": 1, "KL(q(x|z)||p(x|z))": 1}, "C2"),
    ],
)
def test_members(terms: dict[str, float], expected: str) -> None:
    lagrangian = Lagrangian(terms)
    assert lagrangian.is_member
    assert lagrangian.constraint_set == expected
    assert expected in lagrangian.membership().reason


def test_elbo_is_c3() -> None:
    assert elbo().constraint_set == "C3"


@pytest.mark.parametrize(
    "terms",
    [
        {},
        {"I_q": -1, "I_p": 1},
        {"KL(q(x)||p(x))": 1},  # half of C2
        {"KL(q(z)||p(z))": 1, "KL(p(z|x)||q(z|x))": 1},  # z marginal with z|x conditional: no set
        {"KL(q(z)||p(z))": 1, "KL(q(x|z)||p(x|z))": 0},  # zero multiplier: the term is absent
        {"KL(q(z)||p(z))": -1, "KL(q(x|z)||p(x|z))": 1},  # non-positive multiplier
        {"KL(q(x,z)||p(x,z))": -2},
    ],
)
def test_non_members_without_constraint_set(terms: dict[str, float]) -> None:
    lagrangian = Lagrangian(terms)
    assert not lagrangian.is_member
    assert lagrangian.constraint_set is None


def test_a_negative_multiplier_anywhere_excludes_membership() -> None:
    """Definition 5 asks lambda_i > 0 for every divergence, even beside a complete constraint set."""
    lagrangian = Lagrangian({"KL(q(x,z)||p(x,z))": 1, "KL(p(z)||q(z))": -1})
    membership = lagrangian.membership()
    assert not membership.member
    assert membership.constraint_set == "C1"
    assert "KL(p(z)||q(z))" in membership.reason

"""Every preset compiles to the tractable form and class of section 2.5 / Theorems 1-3 / section 3.4."""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

import pytest

from infoae_pl.objectives import (
    PRESETS,
    TRACTABILITY_CLASSES,
    Lagrangian,
    PresetMatch,
    VerificationError,
    aae,
    ali_bigan,
    alice,
    beta_elbo,
    compile,
    cyclegan,
    elbo,
    identify_preset,
    infobigan,
    infogan,
    infovae,
    mmd_infovae,
    preset,
    preset_parameters,
    vmi,
)

F = Fraction
LB, ULF, BLF, INTRACTABLE = TRACTABILITY_CLASSES
PXZ, QZX, PZ = "E_q[log p(x|z)]", "E_q[log q(z|x)]", "E_q[log p(z)]"
VMI_TERM = "E_p[log q(z|x)]"


def _nonzero(form: dict[str, Fraction]) -> dict[str, Fraction]:
    return {k: F(v) for k, v in form.items() if v}


def _check(lagrangian: Lagrangian, cls: str, form: dict[str, Fraction]) -> None:
    compiled = compile(lagrangian)
    assert compiled.tractability_class == cls
    assert compiled.tractable_form == _nonzero(form)
    compiled.verify()


def test_elbo_both_lagrangian_forms() -> None:
    """Eq. (12) and eq. (13) are the same objective: -E_q[log p(x|z)] + E_q[log q(z|x)] - E_q[log p(z)]."""
    eq13 = Lagrangian({"KL(q(z|x)||p(z|x))": 1, "KL(q(x)||p(x))": 1})
    for lagrangian in (elbo(), eq13, Lagrangian({"KL(q(x,z)||p(x,z))": 1})):
        _check(lagrangian, LB, {PXZ: -1, QZX: 1, PZ: -1})
        assert identify_preset(lagrangian) == PresetMatch("elbo", {})


@pytest.mark.parametrize("beta", [F(0), F(1, 2), F(1), F(2), F(7, 3), F(-1, 4)])
def test_beta_elbo_eq15_compiles_to_eq14(beta: Fraction) -> None:
    _check(beta_elbo(beta), LB, {PXZ: -1, QZX: beta, PZ: -beta})


def test_vmi() -> None:
    """-I_p + KL(p(z|x)||q(z|x)) = -E_p[log q(z|x)] (the paper prints the opposite sign in Theorem 1)."""
    _check(vmi(), LB, {VMI_TERM: -1})


@pytest.mark.parametrize(("l1", "l2"), [(F(1), F(0)), (F(2), F(3, 2)), (F(0), F(1)), (F(-1, 3), F(5))])
def test_infogan(l1: Fraction, l2: Fraction) -> None:
    _check(infogan(l1, l2), ULF, {VMI_TERM: -1, "KL(p(x)||q(x))": l1, "KL(q(x)||p(x))": l2})


@pytest.mark.parametrize(
    ("a", "l1", "l2"),
    [(F(-1), F(1), F(0)), (F(1, 2), F(2), F(1, 2)), (F(-3), F(0), F(0)), (F(2), F(10), F(-1))],
)
def test_infovae_theorem2(a: Fraction, l1: Fraction, l2: Fraction) -> None:
    form = {PXZ: -1, QZX: a + 1, PZ: -(a + 1), "KL(q(z)||p(z))": l1 - a - 1, "KL(p(z)||q(z))": l2}
    _check(infovae(a, l1, l2), ULF, form)


@pytest.mark.parametrize(("a", "lam"), [(F(-1), F(1)), (F(0), F(1000)), (F(3, 2), F(1, 2))])
def test_mmd_infovae(a: Fraction, lam: Fraction) -> None:
    """Section 3.4 literally: the KL InfoVAE with lambda1 = lambda2 = 0 plus lam MMD(p(z)||q(z)).

    Without a KL(q(z)||p(z)) multiplier the tractable form keeps -(alpha+1) KL(q(z)||p(z)) (a unary
    term), so only alpha = -1 gives the familiar -E_q[log p(x|z)] + lam MMD(p(z)||q(z)).
    """
    form = {PXZ: -1, QZX: a + 1, PZ: -(a + 1), "KL(q(z)||p(z))": -(a + 1), "MMD(p(z)||q(z))": lam}
    _check(mmd_infovae(a, lam), ULF, form)


@pytest.mark.parametrize(("a", "l1", "l2"), [(F(0), F(1), F(0)), (F(1), F(1), F(1)), (F(-1, 2), F(3), F(2))])
def test_infobigan_theorem3(a: Fraction, l1: Fraction, l2: Fraction) -> None:
    """Theorem 3's tractable form, with +alpha E_p[log q(z|x)] (the paper prints -alpha: sign slip)."""
    form = {"KL(p(x,z)||q(x,z))": a + 1, "KL(p(x)||q(x))": l1 - a - 1, "KL(q(x)||p(x))": l2, VMI_TERM: a}
    _check(infobigan(a, l1, l2), BLF, form)


def test_ali_bigan_and_alice_are_binary() -> None:
    """A JS divergence between joints is only computable by the binary toolbox's likelihood-free term."""
    _check(ali_bigan(), BLF, {"JS(q(x,z)||p(x,z))": 1})
    _check(alice(), BLF, {PXZ: -1, "JS(q(x,z)||p(x,z))": 1})


def test_cyclegan_is_unary() -> None:
    """CycleGAN is unary likelihood-free.

    -I_q + KL(q(x|z)||p(x|z)) = -E_q[log p(x|z)] and -I_p + KL(p(z|x)||q(z|x)) = -E_p[log q(z|x)]
    up to elementary transformations: both cycle-consistency (reconstruction) terms are
    likelihood-based.  What is left, JS(q(x)||p(x)) and JS(q(z)||p(z)), compares marginals one
    variable group at a time, so the unary toolbox suffices; with no joint term it is not binary,
    and the two marginal divergences cannot cancel, so it is not likelihood-based.
    """
    _check(cyclegan(), ULF, {PXZ: -1, VMI_TERM: -1, "JS(q(x)||p(x))": 1, "JS(q(z)||p(z))": 1})


def test_aae_is_unary() -> None:
    _check(aae(), ULF, {PXZ: -1, "JS(q(z)||p(z))": 1})


def test_issue_example() -> None:
    """-0.5 I_q + KL(q(x|z)||p(x|z)) + 1.5 KL(q(z)||p(z)).

    A beta-ELBO with I_q coefficient beta - 1 = -0.5 would need KL(q(z)||p(z)) coefficient beta = 0.5;
    the extra 1 x KL(q(z)||p(z)) cannot be cancelled (it is the only source of E_q[log q(z)] left),
    so the objective is unary likelihood-free: KL InfoVAE with alpha = -0.5, lambda1 = 1.5, lambda2 = 0.
    """
    lagrangian = Lagrangian.parse(["I_q=-0.5", "KL(q(x|z)||p(x|z))=1", "KL(q(z)||p(z))=1.5"])
    _check(lagrangian, ULF, {PXZ: -1, QZX: F(1, 2), PZ: F(-1, 2), "KL(q(z)||p(z))": 1})
    assert identify_preset(lagrangian) == PresetMatch(
        "infovae", {"alpha": F(-1, 2), "lambda1": F(3, 2), "lambda2": 0}
    )
    assert lagrangian.constraint_set == "C3"


def test_intractable_terms() -> None:
    lagrangian = Lagrangian(
        {"E_q[KL(p(z|x)||q(z|x))]": 1, "I_p": 1, "JS(q(x|z)||p(x|z))": 2, "KL(q(z)||p(z))": 1}
    )
    compiled = compile(lagrangian)
    assert compiled.tractability_class == INTRACTABLE
    assert not compiled.is_tractable
    assert compiled.uncovered_terms == ("E_q[KL(p(z|x)||q(z|x))]", "JS(q(x|z)||p(x|z))")
    assert "q(x)p(z|x)" in compiled.message and "eq. 17" in compiled.message
    assert "non-KL divergence between conditionals" in compiled.message
    compiled.verify()


def test_verify_detects_a_wrong_form() -> None:
    compiled = compile(beta_elbo(F(1, 2)))
    broken = dataclasses.replace(compiled, tractable_form={**compiled.tractable_form, PZ: F(-1)})
    with pytest.raises(VerificationError):
        broken.verify()


def test_equivalent_lagrangians_share_one_canonical_form() -> None:
    """The tractable form depends only on the equivalence class, e.g. InfoBiGAN's joint form."""
    joint = Lagrangian({"KL(p(x,z)||q(x,z))": 1})
    assert compile(joint).tractable_form == compile(infobigan()).tractable_form
    assert identify_preset(joint) == PresetMatch("infobigan", {"alpha": 0, "lambda1": 1, "lambda2": 0})


@pytest.mark.parametrize(
    ("lagrangian", "expected"),
    [
        (beta_elbo(F(1, 2)), PresetMatch("beta_elbo", {"beta": F(1, 2)})),
        (infovae(F(-1, 2), F(1, 2), 0), PresetMatch("beta_elbo", {"beta": F(1, 2)})),  # lambda1 = alpha + 1
        (infogan(0, 0), PresetMatch("vmi", {})),
        (infobigan(-1, 2, 3), PresetMatch("infogan", {"lambda1": 2, "lambda2": 3})),
        (mmd_infovae(F(1, 3), 0), PresetMatch("infovae", {"alpha": F(1, 3), "lambda1": 0, "lambda2": 0})),
        (mmd_infovae(-1, 0), PresetMatch("beta_elbo", {"beta": 0})),
        (mmd_infovae(F(1, 3), 5), PresetMatch("mmd_infovae", {"alpha": F(1, 3), "lam": 5})),
        (cyclegan(), PresetMatch("cyclegan", {})),
        (Lagrangian({"I_q": 1}), None),
        (elbo() + elbo(), None),  # no rescaling
    ],
)
def test_identify_preset(lagrangian: Lagrangian, expected: PresetMatch | None) -> None:
    assert identify_preset(lagrangian) == expected


def test_identify_preset_round_trips_random_parameters() -> None:
    rng = random.Random(7)
    for name in PRESETS:
        for _ in range(5):
            params = {p: F(rng.randint(-12, 12), rng.randint(1, 4)) for p in preset_parameters(name)}
            lagrangian = preset(name, **params)
            match = identify_preset(lagrangian)
            assert match is not None
            rebuilt = preset(match.name, **match.params)
            assert compile(rebuilt).tractable_form == compile(lagrangian).tractable_form
            if match.name == name:
                assert match.params == params


def test_preset_errors() -> None:
    with pytest.raises(ValueError, match="valid presets: elbo, beta_elbo"):
        preset("vae")
    with pytest.raises(ValueError, match="its parameters: beta"):
        preset("beta_elbo", gamma=1)
    assert preset("beta_elbo", beta="0.5") == beta_elbo(0.5)
    assert str(PresetMatch("infovae", {"alpha": F(-1, 2)})) == "infovae(alpha=-0.5)"

"""Learned multipliers in the algebra: the affine form against the compiler at many λ, and the refusals."""

from fractions import Fraction

import pytest

from infoae_pl.objectives import Lagrangian, compile, preset
from infoae_pl.objectives.dual import compile_dual

MAX_MI = Lagrangian({"I_q": -1})
MMD = Lagrangian({"MMD(q(z)||p(z))": 1})


def test_the_form_is_affine_in_the_multipliers_and_matches_the_compiler_everywhere():
    """Lagrangian VAE: max I_q subject to −ELBO ≤ ε1 and MMD ≤ ε2 (unary likelihood-free for every λ)."""
    dual = compile_dual(MAX_MI, {"neg_elbo": preset("elbo"), "mmd": MMD}, {"neg_elbo": Fraction(1), "mmd": Fraction(1)})
    assert dual.tractability_class == "unary-likelihood-free"
    assert dual.constraint_forms["neg_elbo"] == {"E_q[log p(x|z)]": -1, "E_q[log q(z|x)]": 1, "E_q[log p(z)]": -1}
    assert dual.constraint_forms["mmd"] == {"MMD(q(z)||p(z))": 1}
    for a, b in [(Fraction(0), Fraction(0)), (Fraction(3, 7), Fraction(0)), (Fraction(5), Fraction(1000)),
                 (Fraction(1, 3), Fraction(2, 9))]:
        multipliers = {"neg_elbo": a, "mmd": b}
        compiled = compile(dual.lagrangian(multipliers))
        assert dict(compiled.tractable_form) == dual.form(multipliers)
        assert compiled.tractability_class == "unary-likelihood-free"


def test_a_class_that_changes_with_lambda_is_refused_with_the_reason():
    """β-ELBO-type: −I_q + KL(q(x|z)||p(x|z)) + λ·KL(q(z)||p(z)) is likelihood-based only at λ = 0."""
    objective = Lagrangian({"I_q": -1, "KL(q(x|z)||p(x|z))": 1})
    with pytest.raises(ValueError, match=r"class changes with λ \(likelihood-based at the initial multipliers, "
                                         r"unary-likelihood-free at others\): some term cancels only for particular λ"):
        compile_dual(objective, {"kl": Lagrangian({"KL(q(z)||p(z))": 1})}, {"kl": Fraction(0)})
    # From λ = 1 the class is unary likelihood-free for every λ, so learning λ is allowed.
    assert compile_dual(objective, {"kl": Lagrangian({"KL(q(z)||p(z))": 1})}, {"kl": Fraction(1)}).tractability_class \
        == "unary-likelihood-free"


def test_an_intractable_or_missing_constraint_is_refused():
    with pytest.raises(ValueError, match=r"constraint 'cond' .* cannot be estimated"):
        compile_dual(MAX_MI, {"cond": Lagrangian({"E_q[KL(p(z|x)||q(z|x))]": 1})}, {"cond": Fraction(1)})
    with pytest.raises(ValueError, match="needs at least one constraint"):
        compile_dual(MAX_MI, {}, {})

"""From config to loss plan: components, schedules, bounds and constraints, against the compiler."""

import math

import pytest

from infoae_pl.objectives import compile, preset
from infoae_pl.objectives.config import (
    ANALYTIC_KL,
    BOUND_PREFIX,
    Warmup,
    loss_components,
    missing_coefficient,
    plan_loss,
)

RECON = "E_q[log p(x|z)]"


def test_components_are_the_compiled_form_with_the_kl_pair_grouped():
    plan = plan_loss(preset="beta_elbo", preset_params={"beta": 0.5})
    assert plan.components == {RECON: -1.0, ANALYTIC_KL: 0.5}
    assert plan.tractable_form == {RECON: -1.0, "E_q[log q(z|x)]": 0.5, "E_q[log p(z)]": -0.5}
    assert plan.components == loss_components(compile(preset("beta_elbo", beta=0.5)).tractable_form)
    assert plan.coefficients(0) == plan.components


def test_constant_and_linear_warmups_then_the_compiled_coefficient():
    plan = plan_loss(preset="beta_elbo", preset_params={"beta": 2.0},
                     schedules={ANALYTIC_KL: {"steps": 10, "value": 0.0, "shape": "linear"}})
    assert [plan.coefficients(s)[ANALYTIC_KL] for s in (0, 5, 9, 10, 1000)] == [0.0, 1.0, 1.8, 2.0, 2.0]
    assert Warmup(3, 0.25).coefficient(2, 7.0) == 0.25 and Warmup(3, 0.25).coefficient(3, 7.0) == 7.0
    # Any component of any Lagrangian: here the MMD term of an InfoVAE.
    infovae = plan_loss(preset="beta_elbo", lagrangian={"MMD(q(z)||p(z))": 100.0},
                        schedules={"MMD(q(z)||p(z))": {"steps": 5, "value": 1.0}})
    assert infovae.coefficients(4)["MMD(q(z)||p(z))"] == 1.0
    assert infovae.coefficients(5)["MMD(q(z)||p(z))"] == 100.0


def test_bounds_are_listed_as_bound_coefficients_and_missing_ones_do_not_cap():
    plan = plan_loss(preset="beta_elbo", bounds={RECON: 3.0})
    assert plan.coefficients(0)[BOUND_PREFIX + RECON] == 3.0
    assert missing_coefficient(BOUND_PREFIX + RECON) == math.inf
    assert missing_coefficient(ANALYTIC_KL) == 0.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedules": {"E_p[log p(z)]": {"steps": 1, "value": 0}}}, r"not a component of this loss; its components are: E_q"),
        ({"schedules": {ANALYTIC_KL: {"steps": -1, "value": 0}}}, r"steps must be an integer >= 0"),
        ({"schedules": {ANALYTIC_KL: {"steps": 1}}}, "must be a mapping with keys steps, value"),
        ({"schedules": {ANALYTIC_KL: {"steps": 1, "value": 0, "shape": "cosine"}}}, "choose one of: constant, linear"),
        ({"bounds": {ANALYTIC_KL + "x": 1.0}}, r"bounds apply to the E_q components of this loss"),
        ({"bounds": {RECON: float("nan")}}, "must be a finite number"),
    ],
)
def test_bad_schedules_and_bounds_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        plan_loss(preset="beta_elbo", **options)


def test_learned_multipliers_give_objective_plus_lambda_times_constraint():
    plan = plan_loss(lagrangian={"I_q": 1.0}, constraints={"c": {"preset": "elbo", "epsilon": 1.5, "initial": 2.0}})
    assert plan.budgets == {"c": 1.5} and plan.initial == {"c": 2.0}
    for lam in (0.0, 2.0, 3.5):
        expected = loss_components(compile(plan.dual.lagrangian({"c": lam})).tractable_form)
        got = {k: v for k, v in plan.coefficients(0, [lam]).items() if v}
        assert got.keys() == expected.keys() and all(got[k] == pytest.approx(expected[k]) for k in got)

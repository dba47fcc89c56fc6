"""Learned Lagrange multipliers (section 4.1): a fixed objective plus Σ λ_i·(C_i − ε_i) with λ_i ≥ 0 learned.

The loss's tractable form must be affine in λ, Σ_k (O_k + Σ_i λ_i C_ik)·term_k, with one tractability
class for every λ the training can reach.  :func:`compile_dual` compiles the objective O and each
constraint C_i, then checks exactly (Fractions) that the compiled form at the initial λ and at a generic
λ both equal O + Σ λ_i C_i term by term and fall in the same class; a Lagrangian in which some term
cancels only for particular λ (so that its class changes as λ moves) is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from infoae_pl.objectives.compiler import CompiledObjective, compile
from infoae_pl.objectives.lagrangian import Lagrangian
from infoae_pl.objectives.terms import as_coefficient


@dataclass(frozen=True)
class DualObjective:
    """The compiled pieces: the fixed objective's tractable form and each constraint's, with the class."""

    objective: Lagrangian
    constraints: dict[str, Lagrangian]
    objective_form: dict[str, Fraction]
    constraint_forms: dict[str, dict[str, Fraction]]
    tractability_class: str

    def lagrangian(self, multipliers: Mapping[str, Fraction]) -> Lagrangian:
        """O + Σ λ_i C_i at the given multipliers."""
        total = self.objective
        for name, constraint in self.constraints.items():
            total = total + _scaled(constraint, as_coefficient(multipliers[name]))
        return total

    def form(self, multipliers: Mapping[str, Fraction]) -> dict[str, Fraction]:
        """The affine tractable form O_k + Σ λ_i C_ik (zero coefficients dropped)."""
        form: dict[str, Fraction] = dict(self.objective_form)
        for name, constraint_form in self.constraint_forms.items():
            for term, value in constraint_form.items():
                form[term] = form.get(term, Fraction(0)) + as_coefficient(multipliers[name]) * value
        return {k: v for k, v in form.items() if v}


def _scaled(lagrangian: Lagrangian, factor: Fraction) -> Lagrangian:
    return Lagrangian({k: factor * v for k, v in lagrangian.items()})


def _generic(names: list[str]) -> dict[str, Fraction]:
    """Multipliers that no cancellation of small integer coefficients singles out."""
    return {name: Fraction(113 + 17 * i, 37 + 5 * i) for i, name in enumerate(names)}


def _tractable(what: str, lagrangian: Lagrangian) -> CompiledObjective:
    compiled = compile(lagrangian)
    if not compiled.is_tractable:
        raise ValueError(f"{what} {lagrangian} cannot be estimated: {compiled.message}")
    return compiled


def compile_dual(
    objective: Lagrangian, constraints: Mapping[str, Lagrangian], initial: Mapping[str, Fraction]
) -> DualObjective:
    """Compile O + Σ λ_i C_i for learned λ, or raise ValueError saying why it cannot be trained."""
    if not constraints:
        raise ValueError("compile_dual needs at least one constraint")
    objective_form = dict(_tractable("the objective", objective).tractable_form) if objective else {}
    constraint_forms = {
        name: dict(_tractable(f"constraint {name!r}", c).tractable_form) for name, c in constraints.items()
    }
    dual = DualObjective(objective, dict(constraints), objective_form, constraint_forms, "")
    classes = {}
    for label, multipliers in (("the initial", dict(initial)), ("generic", _generic(list(constraints)))):
        compiled = compile(dual.lagrangian(multipliers))
        if not compiled.is_tractable:
            raise ValueError(f"at {label} multipliers {compiled.lagrangian} is intractable: {compiled.message}")
        if dict(compiled.tractable_form) != dual.form(multipliers):
            raise ValueError(
                f"at {label} multipliers the compiled form {compiled.formula()} is not the objective's plus the "
                "multipliers times the constraints': the tractable form would not be affine in λ"
            )
        classes[label] = compiled.tractability_class
    if len(set(classes.values())) > 1:
        raise ValueError(
            f"the tractability class changes with λ ({classes['the initial']} at the initial multipliers, "
            f"{classes['generic']} at others): some term cancels only for particular λ, so learning λ would "
            "change how the objective must be estimated; start from other multipliers or fix λ"
        )
    return DualObjective(objective, dict(constraints), objective_form, constraint_forms, classes["generic"])

"""From a module's config to the loss it trains: coefficients over named loss components.

A Lagrangian (term -> coefficient), a preset, or both, with optional learned-multiplier
constraints, is compiled into its tractable form; the loss is then Σ_k c_k(step)·t_k over loss
components k (toolbox terms, with an opposite-signed ``E_q[log q(z|x)]``/``E_q[log p(z)]`` pair
replaced by the analytic KL). ``schedules`` change a component's coefficient during the first steps
(the β-VAE's KL warm-up); ``bounds`` cap an ``E_q`` term's batch estimate from above (the authors'
Figure 1 bound on the reconstruction term). Pure Python over floats and Fractions: the models turn
these coefficients into a loss on tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from infoae_pl.objectives.compiler import CompiledObjective
from infoae_pl.objectives.compiler import compile as compile_lagrangian
from infoae_pl.objectives.dual import DualObjective, compile_dual
from infoae_pl.objectives.lagrangian import Lagrangian
from infoae_pl.objectives.presets import PRESETS
from infoae_pl.objectives.presets import preset as build_preset
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

#: The loss component replacing ``c·E_q[log q(z|x)] − c·E_q[log p(z)]``: the analytic KL, batch-averaged.
ANALYTIC_KL = "E_q[KL(q(z|x)||p(z))]"
LOG_Q_ZX = "E_q[log q(z|x)]"
LOG_P_Z = "E_q[log p(z)]"
#: The keys of one constraint, and of one schedule.
CONSTRAINT_KEYS: tuple[str, ...] = ("lagrangian", "preset", "preset_params", "epsilon", "initial")
SCHEDULE_KEYS: tuple[str, ...] = ("steps", "value", "shape")
SCHEDULE_SHAPES: tuple[str, ...] = ("constant", "linear")
#: Coefficient keys holding an upper bound on a component's estimate rather than a multiplier.
BOUND_PREFIX = "bound/"


def build_lagrangian(
    lagrangian: Mapping[str, float] | None, preset_name: str | None, preset_params: Mapping[str, float] | None
) -> Lagrangian:
    """The objective from a term -> coefficient map, a preset name with its parameters, or both:
    then the map's terms are added to the preset's (e.g. β-ELBO + λ·MMD(q(z)||p(z)), Figure 2's InfoVAE)."""
    if lagrangian is None and preset_name is None:
        raise ValueError(
            "give lagrangian (term -> coefficient, e.g. {'I_q': -0.5, "
            f"'KL(q(x|z)||p(x|z))': 1, 'KL(q(z)||p(z))': 1.5}}) or preset (one of: {', '.join(PRESETS)}), or both"
        )
    if preset_name is None:
        if preset_params:
            raise ValueError("preset_params only applies to a preset; put coefficients in lagrangian instead")
        return Lagrangian(lagrangian)
    objective = build_preset(preset_name, **(preset_params or {}))
    return objective if lagrangian is None else objective + Lagrangian(lagrangian)


def parse_constraints(
    constraints: Mapping[str, Mapping[str, Any]], multiplier_max: float
) -> tuple[dict[str, float], dict[str, Fraction], dict[str, Lagrangian]]:
    """Budgets ε_i, initial λ_i and constraint Lagrangians C_i from ``{name: {lagrangian | preset
    [+ preset_params], epsilon, initial}}`` (e.g. ``{"neg_elbo": {"preset": "elbo", "epsilon": 88}}``)."""
    budgets, initial, pieces = {}, {}, {}
    for name, spec in constraints.items():
        where = f"constraints.{name}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be a mapping with keys {', '.join(CONSTRAINT_KEYS)}, got {spec!r}")
        unknown = sorted(set(spec) - set(CONSTRAINT_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONSTRAINT_KEYS)}")
        if "epsilon" not in spec:
            raise ValueError(f"{where}.epsilon (the budget: the constraint's value must stay <= epsilon) is required")
        check_finite_number(f"{where}.epsilon", spec["epsilon"])
        start = spec.get("initial", 1.0)
        check_finite_number(f"{where}.initial", start, minimum=0.0)
        if start > multiplier_max:
            raise ValueError(f"{where}.initial={start} exceeds multiplier_max={multiplier_max}")
        pieces[name] = build_lagrangian(spec.get("lagrangian"), spec.get("preset"), spec.get("preset_params"))
        budgets[name] = float(spec["epsilon"])
        initial[name] = Fraction(start).limit_denominator(10**6)
    return budgets, initial, pieces


def check_trainable(compiled: CompiledObjective) -> None:
    """Refuse, before any training, an objective that is intractable or constant."""
    objective = compiled.lagrangian
    if not compiled.is_tractable:
        raise ValueError(
            f"{objective} cannot be trained: {compiled.message} (uncovered terms: {', '.join(compiled.uncovered_terms)})"
        )
    if not compiled.tractable_form:
        raise ValueError(f"{objective or 'the empty Lagrangian'} compiles to a constant: there is nothing to train")


def loss_components(tractable_form: Mapping[str, Fraction]) -> dict[str, float]:
    """The tractable form as float loss coefficients, with an opposite-signed ``E_q[log q(z|x)]``,
    ``E_q[log p(z)]`` pair replaced by :data:`ANALYTIC_KL` (same expectation, no sampling variance).

    The pair's coefficients are compared exactly, as Fractions."""
    c = tractable_form.get(LOG_Q_ZX, Fraction(0))
    grouped = c != 0 and tractable_form.get(LOG_P_Z) == -c
    components: dict[str, float] = {}
    for name, value in tractable_form.items():
        if grouped and name == LOG_Q_ZX:
            components[ANALYTIC_KL] = float(value)
        elif not (grouped and name == LOG_P_Z):
            components[name] = float(value)
    return components


def missing_coefficient(key: str) -> float:
    """The value of a coefficient that a loss lacks: 0 for a multiplier, +∞ (no cap) for a bound."""
    return math.inf if key.startswith(BOUND_PREFIX) else 0.0


@dataclass(frozen=True)
class Warmup:
    """A component's coefficient for its first ``steps`` steps: ``value`` (``"constant"``), or moving
    linearly from ``value`` to the compiled coefficient (``"linear"``); the compiled one after."""

    steps: int
    value: float
    shape: str = "constant"

    def coefficient(self, step: int, target: float) -> float:
        if step >= self.steps:
            return target
        if self.shape == "constant":
            return self.value
        return self.value + (target - self.value) * step / self.steps


def parse_schedules(schedules: Mapping[str, Mapping[str, Any]], components: Mapping[str, float]) -> dict[str, Warmup]:
    """``{component: {steps, value[, shape]}}`` checked against the loss's components."""
    out = {}
    for name, spec in schedules.items():
        where = f"schedules[{name!r}]"
        if name not in components:
            raise ValueError(f"{where}: not a component of this loss; its components are: {', '.join(components)}")
        if not isinstance(spec, Mapping) or set(spec) - set(SCHEDULE_KEYS) or not {"steps", "value"} <= set(spec):
            raise ValueError(f"{where} must be a mapping with keys steps, value and optionally shape; got {spec!r}")
        check_int_at_least(f"{where}.steps", spec["steps"], 0)
        check_finite_number(f"{where}.value", spec["value"])
        shape = spec.get("shape", "constant")
        check_choice(f"{where}.shape", shape, SCHEDULE_SHAPES)
        out[name] = Warmup(int(spec["steps"]), float(spec["value"]), shape)
    return out


def parse_bounds(bounds: Mapping[str, float], components: Mapping[str, float]) -> dict[str, float]:
    """``{E_q component: upper bound}`` checked against the loss's components (the bound caps the
    component's batch estimate, so it contributes at most c·bound)."""
    estimable = [n for n in components if n.startswith("E_q[")]
    for name, value in bounds.items():
        if name not in estimable:
            raise ValueError(f"bounds[{name!r}]: bounds apply to the E_q components of this loss: {', '.join(estimable)}")
        check_finite_number(f"bounds[{name!r}]", value)
    return {name: float(value) for name, value in bounds.items()}


@dataclass
class LossPlan:
    """What a module trains: the compiled objective, its loss components and their coefficients.

    Without constraints the coefficients are :attr:`components`; with them (learned multipliers)
    they are O + Σ λ_i·C_i at the current λ. Schedules and bounds apply to either.
    """

    compiled: CompiledObjective
    #: Every toolbox term estimated and logged (term name -> coefficient at the initial multipliers).
    tractable_form: dict[str, float]
    #: Loss component -> coefficient (see :func:`loss_components`).
    components: dict[str, float]
    schedules: dict[str, Warmup] = field(default_factory=dict)
    bounds: dict[str, float] = field(default_factory=dict)
    dual: DualObjective | None = None
    objective_components: dict[str, float] = field(default_factory=dict)
    constraint_components: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Constraint name -> budget ε_i, and -> initial λ_i.
    budgets: dict[str, float] = field(default_factory=dict)
    initial: dict[str, float] = field(default_factory=dict)

    def coefficients(self, step: int, multipliers: list[float] | None = None) -> dict[str, float]:
        """Component -> coefficient at ``step`` (``multipliers``: the current λ_i, in :attr:`budgets`
        order), plus ``bound/<component>`` -> bound for each bounded component."""
        if self.dual is None:
            coefficients = dict(self.components)
        else:
            coefficients = dict(self.objective_components)
            for multiplier, name in zip(multipliers if multipliers is not None else self.initial.values(), self.budgets):
                for key, value in self.constraint_components[name].items():
                    coefficients[key] = coefficients.get(key, 0.0) + multiplier * value
        for name, warmup in self.schedules.items():
            coefficients[name] = warmup.coefficient(step, coefficients.get(name, 0.0))
        coefficients.update({BOUND_PREFIX + name: bound for name, bound in self.bounds.items()})
        return coefficients

    @property
    def loss_terms(self) -> list[str]:
        """Every term a loss of this plan needs estimated: the components, the compiled terms, the constraints'."""
        names = dict.fromkeys(self.components)
        names.update(dict.fromkeys(self.tractable_form))
        for components in self.constraint_components.values():
            names.update(dict.fromkeys(components))
        return list(names)


def plan_loss(
    lagrangian: Mapping[str, float] | None = None,
    preset: str | None = None,
    preset_params: Mapping[str, float] | None = None,
    constraints: Mapping[str, Mapping[str, Any]] | None = None,
    multiplier_max: float = 1e4,
    schedules: Mapping[str, Mapping[str, Any]] | None = None,
    bounds: Mapping[str, float] | None = None,
) -> LossPlan:
    """Compile a module's objective config into a :class:`LossPlan`; ValueError, naming the option,
    for an intractable or constant objective, a bad constraint, schedule or bound."""
    dual = None
    if constraints:
        objective = build_lagrangian(lagrangian, preset, preset_params) if lagrangian or preset else Lagrangian()
        budgets, initial, pieces = parse_constraints(constraints, multiplier_max)
        dual = compile_dual(objective, pieces, initial)
        compiled = compile_lagrangian(dual.lagrangian(initial))
    else:
        compiled = compile_lagrangian(build_lagrangian(lagrangian, preset, preset_params))
    check_trainable(compiled)
    tractable_form = {n: float(c) for n, c in compiled.tractable_form.items()}
    plan = LossPlan(compiled, tractable_form, loss_components(compiled.tractable_form), dual=dual)
    if dual is not None:
        # Learned multipliers: the loss is O + Σ λ_i·C_i over the union of the pieces' terms.
        for form in (dual.objective_form, *dual.constraint_forms.values()):
            plan.tractable_form.update({n: plan.tractable_form.get(n, 0.0) for n in form})
        plan.objective_components = loss_components(dual.objective_form)
        plan.constraint_components = {n: loss_components(f) for n, f in dual.constraint_forms.items()}
        plan.budgets = budgets
        plan.initial = {n: float(initial[n]) for n in budgets}
    every_component = {**plan.components, **plan.objective_components}
    for components in plan.constraint_components.values():
        every_component.update(components)
    plan.schedules = parse_schedules(schedules or {}, every_component)
    plan.bounds = parse_bounds(bounds or {}, every_component)
    return plan

"""Learned Lagrange multipliers (section 4.1): projected ascent on λ_i·(C_i − ε_i), λ_i in [0, max].

The component owns the multipliers, a running mean of each constraint's value and the optimiser
that moves them; all three are part of its ``state_dict`` (the optimiser through
``get_extra_state``), so a checkpoint of the module resumes the same ascent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

#: Optimisers of learned multipliers.
MULTIPLIER_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


class LearnedMultipliers(nn.Module):
    """λ_i ≥ 0 per constraint in ``budgets`` (name -> ε_i), starting at ``initial``, updated every
    ``update_every`` steps by ``optimizer`` ("sgd" or "adam", learning rate ``lr``) and projected
    onto [0, ``maximum``]."""

    def __init__(
        self,
        budgets: Mapping[str, float],
        initial: Mapping[str, float],
        optimizer: str = "sgd",
        lr: float = 0.01,
        maximum: float = 1e4,
        update_every: int = 1,
    ) -> None:
        super().__init__()
        check_choice("multiplier_optimizer", optimizer, MULTIPLIER_OPTIMIZERS)
        check_finite_number("multiplier_lr", lr, minimum=0.0)
        check_finite_number("multiplier_max", maximum, minimum=0.0)
        check_int_at_least("multiplier_update_every", update_every, 1)
        self.budgets = dict(budgets)
        self.register_buffer("lambdas", torch.tensor([float(initial[n]) for n in self.budgets]))
        self.register_buffer("average", torch.full((len(self.budgets),), math.nan))
        self.settings = {"optimizer": optimizer, "lr": lr, "max": maximum, "every": update_every}
        self._optimizer: torch.optim.Optimizer | None = None

    def values(self) -> list[float]:
        """The current λ_i, in the order of :attr:`budgets`."""
        return self.lambdas.tolist()

    def log_entries(self, constraint_values: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``constraint/``, ``slack/`` and ``lambda/`` entries per constraint, from their current values."""
        out: dict[str, Tensor] = {}
        for multiplier, (name, budget) in zip(self.lambdas, self.budgets.items()):
            out[f"constraint/{name}"] = constraint_values[name]
            out[f"slack/{name}"] = budget - constraint_values[name]
            out[f"lambda/{name}"] = multiplier.clone()
        return out

    def update(self, terms: Mapping[str, Tensor], step: int) -> None:
        """One projected ascent step of each λ_i on λ_i·(C_i − ε_i) after step ``step``, every
        ``update_every`` steps (``terms`` holds ``constraint/<name>``)."""
        values = torch.stack([terms[f"constraint/{n}"].detach() for n in self.budgets]).to(self.lambdas)
        self.average = torch.where(self.average.isnan(), values, 0.98 * self.average + 0.02 * values)
        if (step + 1) % self.settings["every"]:
            return
        violation = values - torch.tensor(list(self.budgets.values()), dtype=values.dtype, device=values.device)
        optimizer = self.optimizer()
        self.lambdas.grad = -violation  # ascent: the optimiser descends on −λ·(C − ε)
        optimizer.step()
        self.lambdas.grad = None
        self.lambdas.clamp_(0.0, self.settings["max"])

    def optimizer(self) -> torch.optim.Optimizer:
        """The multipliers' optimiser, made on first use."""
        if self._optimizer is None:
            cls = torch.optim.SGD if self.settings["optimizer"] == "sgd" else torch.optim.Adam
            self._optimizer = cls([self.lambdas], lr=self.settings["lr"])
        return self._optimizer

    def get_extra_state(self) -> dict[str, Any]:
        return {} if self._optimizer is None else {"optimizer": self._optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("optimizer") is not None:
            self._optimizer = None
            self.optimizer().load_state_dict(state["optimizer"])

    def table(self, tolerance: float = 0.05) -> list[dict[str, Any]]:
        """Per constraint: budget ε, running mean of its value, λ, slack ε − value and its status:
        ``active`` (λ > 0 and |slack| ≤ ``tolerance``·|ε|), ``slack`` (inside the budget) or ``violated``."""
        rows = []
        for multiplier, average, (name, budget) in zip(self.lambdas.tolist(), self.average.tolist(), self.budgets.items()):
            slack = budget - average
            band = tolerance * (abs(budget) or 1.0)
            status = "active" if multiplier > 0 and abs(slack) <= band else ("violated" if slack < -band else "slack")
            rows.append({"constraint": name, "epsilon": budget, "value": average, "lambda": multiplier,
                         "slack": slack, "status": status})
        return rows

    def format_table(self) -> str:
        """:meth:`table` as the lines printed at the end of a run."""
        lines = ["learned multipliers (value: running mean over training steps):",
                 f"  {'constraint':<24} {'epsilon':>12} {'value':>12} {'lambda':>12} {'slack':>12}  status"]
        for row in self.table():
            lines.append(f"  {row['constraint']:<24} {row['epsilon']:>12.5g} {row['value']:>12.5g} "
                         f"{row['lambda']:>12.5g} {row['slack']:>12.5g}  {row['status']}")
        return "\n".join(lines)

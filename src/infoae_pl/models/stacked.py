"""K copies of one family module, differing in coefficients and seeds, trained as one model.

Parameters are stacked with ``torch.func.stack_module_state`` and the family's own ``loss_terms``
is vmapped over them, so no family re-derives its loss. One Adam over the stacked tensors is
exactly K separate Adams (it is element-wise), and the summed loss gives each copy its own gradient.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.func import functional_call, stack_module_state, vmap

from infoae_pl.models.base import (
    LatentVariableModule,
    NonFiniteLossError,
    adam_with_schedule,
    logger_writes_this_step,
    progress_bar_shows_loss,
)


def resolve_class(module_class: str | type[LatentVariableModule]) -> type[LatentVariableModule]:
    """A family module class from itself or its import path (``infoae_pl.models.BetaELBO``)."""
    if isinstance(module_class, type):
        return module_class
    module_name, _, class_name = module_class.rpartition(".")
    if not module_name:
        raise ValueError(f"module_class must be an import path like 'infoae_pl.models.BetaELBO', got {module_class!r}")
    return getattr(importlib.import_module(module_name), class_name)


class StackedModules(L.LightningModule):
    """Train ``len(copies)`` configurations of ``module_class`` at once.

    ``shared`` holds the constructor arguments common to all copies, ``copies[i]`` those of copy i
    (its coefficients), ``seeds[i]`` its initialisation seed and ``names[i]`` its log name.
    Optimiser settings must be shared: a copy that differs there is refused.
    """

    def __init__(
        self,
        module_class: str,
        shared: dict[str, Any],
        copies: Sequence[dict[str, Any]],
        names: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not copies:
            raise ValueError("copies must name at least one configuration")
        names = list(names) if names is not None else [f"copy{i}" for i in range(len(copies))]
        seeds = list(seeds) if seeds is not None else list(range(len(copies)))
        if len(names) != len(copies) or len(seeds) != len(copies) or len(set(names)) != len(names):
            raise ValueError("names and seeds must give one unique name and one seed per copy")
        cls = resolve_class(module_class)
        modules = []
        for seed, overrides in zip(seeds, copies):
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                modules.append(cls(**{**shared, **overrides}))
        adversarial = [n for n, m in zip(names, modules) if not m.automatic_optimization]
        if adversarial:
            raise ValueError(
                f"copies {adversarial} train critics by alternation (manual optimisation), which stacked copies"
                " do not support; estimate their divergences by MMD or train them as separate runs"
            )
        learned = [n for n, m in zip(names, modules) if getattr(m, "dual", None) is not None]
        if learned:
            raise ValueError(f"copies {learned} have learned multipliers, which stacked copies do not support")
        optimiser_keys = ("lr", "betas", "lr_milestones", "lr_gamma")
        for name, module in zip(names, modules):
            differing = [k for k in optimiser_keys if module.hparams.get(k) != modules[0].hparams.get(k)]
            if differing:
                raise ValueError(f"copy {name!r} differs in optimiser settings {differing}; stacked copies share one optimiser")
            keys, first_keys = set(module.coefficients(0)), set(modules[0].coefficients(0))
            if keys != first_keys:
                raise ValueError(
                    f"copy {name!r} compiles to other coefficients than copy {names[0]!r} "
                    f"({sorted(keys ^ first_keys)} differ); stacked copies may differ in coefficient values only"
                )
        self.names = names
        params, buffers = stack_module_state(modules)
        self.param_names = list(params)
        self.stacked_params = nn.ParameterList([nn.Parameter(params[k]) for k in self.param_names])
        for key, value in buffers.items():
            self.register_buffer("stacked__" + key.replace(".", "__"), value)
        self.buffer_names = list(buffers)
        # Structure-only templates: the function that is vmapped, and each copy's hyperparameters.
        self._templates = [m.to("meta") for m in modules]
        self.last_terms: dict[str, Tensor] = {}

    @property
    def num_copies(self) -> int:
        return len(self.names)

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = dict(zip(self.param_names, self.stacked_params))
        buffers = {k: getattr(self, "stacked__" + k.replace(".", "__")) for k in self.buffer_names}
        return params, buffers

    def coefficients(self, step: int) -> dict[str, Tensor]:
        """Each copy's multipliers at ``step``, stacked into tensors of shape ``[K]``."""
        per_copy = [t.coefficients(step) for t in self._templates]
        return {k: torch.tensor([c[k] for c in per_copy], dtype=torch.float32, device=self.device) for k in per_copy[0]}

    def loss_terms(self, x: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """Every copy's loss terms, each of shape ``[K]``; ``x`` is ``[B, D]`` (shared) or ``[K, B, D]``."""
        params, buffers = self._state()
        coefficients = self.coefficients(self.global_step if step is None else step)
        template = self._templates[0]

        def one_copy(p: dict, b: dict, xs: Tensor, c: dict) -> dict[str, Tensor]:
            return functional_call(template, (p, b), (xs,), {"coefficients": c})

        x_dim = 0 if x.dim() == 3 else None
        validate = Distribution._validate_args
        Distribution.set_default_validate_args(False)  # argument checks branch on data, which vmap forbids
        try:
            return vmap(one_copy, in_dims=(0, 0, x_dim, 0), randomness="different")(params, buffers, x, coefficients)
        finally:
            Distribution.set_default_validate_args(validate)

    def training_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        terms = self.loss_terms(x)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        losses = terms["loss"]
        bad = [n for n, v in zip(self.names, losses) if not torch.isfinite(v)]
        if bad:
            raise NonFiniteLossError(f"training loss became non-finite at step {self.global_step} for copies {bad}")
        if logger_writes_this_step(self):
            self.log_dict({f"train/{n}/{k}": v[i] for k, v in self.last_terms.items() for i, n in enumerate(self.names)})
        if logger_writes_this_step(self) or progress_bar_shows_loss(self):
            self.log("train/loss", losses.sum().detach(), prog_bar=True)
        return losses.sum()

    def unstack(self) -> list[LatentVariableModule]:
        """K ordinary family modules holding the current parameters (for evaluation or checkpoints)."""
        params, buffers = self._state()
        modules = []
        for i, template in enumerate(self._templates):
            module = copy.deepcopy(template).to_empty(device=self.device)
            module.load_state_dict({**{k: v[i].detach() for k, v in params.items()},
                                    **{k: v[i] for k, v in buffers.items()}})
            modules.append(module)
        return modules

    def configure_optimizers(self) -> Any:
        hp = self._templates[0].hparams
        return adam_with_schedule(self.parameters(), hp)

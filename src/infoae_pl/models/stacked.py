"""K copies of one family module, differing in coefficients and seeds, trained as one model.

Parameters are stacked with ``torch.func.stack_module_state`` and the family's own ``loss_terms``
is vmapped over them, so no family re-derives its loss. One Adam over the stacked tensors is
exactly K separate Adams (it is element-wise), and the summed loss gives each copy its own gradient.
Copies can be stopped mid-run (pruned, or their loss went non-finite): their slices are cut from
the parameters and the optimiser state, so they stop costing compute.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Collection, Sequence
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
from infoae_pl.validation import check_choice

NON_FINITE_POLICIES = ("raise", "stop_copy")


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

    ``shared`` holds the constructor arguments common to all copies, ``copies[i]`` those of copy i,
    ``seeds[i]`` its initialisation seed and ``names[i]`` its log name. Copies may differ only in
    the class's ``COEFFICIENT_HPARAMS`` (coefficients and their schedules); anything else (networks,
    optimiser settings) is refused. Copies whose compiled objectives have different terms are
    trained on the union of the terms, a copy's missing ones with coefficient 0 (the same loss).
    ``on_non_finite``: ``"raise"`` stops the run when any copy's loss is NaN or infinite;
    ``"stop_copy"`` stops only that copy (its reason in :attr:`stopped`) and trains the others on.
    """

    def __init__(
        self,
        module_class: str,
        shared: dict[str, Any],
        copies: Sequence[dict[str, Any]],
        names: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        on_non_finite: str = "raise",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_choice("on_non_finite", on_non_finite, NON_FINITE_POLICIES)
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
        self._check_stackable(cls, names, modules)
        self.names = names
        self.on_non_finite = on_non_finite
        #: copy name -> why it stopped (pruned, non-finite loss); stopped copies are dropped at the next step.
        self.stopped: dict[str, str] = {}
        keys: dict[str, None] = {}
        for module in modules:
            keys.update(dict.fromkeys(module.coefficients(0)))
        self.coefficient_keys = list(keys)
        params, buffers = stack_module_state(modules)
        self.param_names = list(params)
        # Per-copy matrices are stored transposed ([K, in, out]): the weight gradient of a batched
        # linear layer then comes out in the stored layout. Stored as [K, out, in], autograd adds a
        # transposing copy per weight that made a CPU step of the MNIST MLP 1.6x slower than unstacked.
        self.transposed = {k for k, v in params.items() if v.dim() == 3}
        self.stacked_params = nn.ParameterList(
            [nn.Parameter(params[k].transpose(1, 2).contiguous() if k in self.transposed else params[k])
             for k in self.param_names]
        )
        for key, value in buffers.items():
            self.register_buffer("stacked__" + key.replace(".", "__"), value)
        self.buffer_names = list(buffers)
        # Structure-only templates: the function that is vmapped, and each copy's hyperparameters.
        self._templates = [m.to("meta") for m in modules]
        self.last_terms: dict[str, Tensor] = {}

    @staticmethod
    def _check_stackable(cls: type[LatentVariableModule], names: list[str], modules: list[LatentVariableModule]) -> None:
        adversarial = [n for n, m in zip(names, modules) if not m.automatic_optimization]
        if adversarial:
            raise ValueError(
                f"copies {adversarial} train critics by alternation (manual optimisation), which stacked copies"
                " do not support; estimate their divergences by MMD or train them as separate runs"
            )
        learned = [n for n, m in zip(names, modules) if getattr(m, "dual", None) is not None]
        if learned:
            raise ValueError(f"copies {learned} have learned multipliers, which stacked copies do not support")
        allowed = set(cls.COEFFICIENT_HPARAMS)
        first = modules[0].hparams
        for name, module in zip(names[1:], modules[1:]):
            differing = sorted(k for k in set(first) | set(module.hparams)
                               if k not in allowed and module.hparams.get(k) != first.get(k))
            if differing:
                raise ValueError(
                    f"copy {name!r} differs from copy {names[0]!r} in {differing}; stacked {cls.__name__} copies may "
                    f"differ only in {sorted(allowed) or 'nothing'} (coefficients and their schedules) and their seeds: "
                    "train other settings as separate runs"
                )

    @property
    def num_copies(self) -> int:
        return len(self.names)

    def _state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = {k: p.transpose(1, 2) if k in self.transposed else p for k, p in zip(self.param_names, self.stacked_params)}
        buffers = {k: getattr(self, "stacked__" + k.replace(".", "__")) for k in self.buffer_names}
        return params, buffers

    def coefficients(self, step: int) -> dict[str, Tensor]:
        """Each copy's multipliers at ``step``, stacked into tensors of shape ``[K]`` (0 for a term a copy lacks)."""
        per_copy = [t.coefficients(step) for t in self._templates]
        return {k: torch.tensor([c.get(k, 0.0) for c in per_copy], dtype=torch.float32, device=self.device)
                for k in self.coefficient_keys}

    def loss_terms(self, x: Tensor, step: int | None = None) -> dict[str, Tensor]:
        """Every copy's loss terms, each of shape ``[K]``; ``x`` is ``[B, D]`` (shared) or ``[K, B, D]``."""
        params, buffers = self._state()
        coefficients = self.coefficients(self.global_step if step is None else step)
        template = self._templates[0]

        def one_copy(p: dict, b: dict, xs: Tensor, c: dict) -> dict[str, Tensor]:
            return functional_call(template, (p, b), (xs,), {"coefficients": c})

        x_dim = 0 if x.dim() == 3 else None
        if self.num_copies == 1:  # one copy runs unvmapped: vmap's per-operation overhead buys nothing here
            def first(tree: dict[str, Tensor]) -> dict[str, Tensor]:
                return {k: v[0] for k, v in tree.items()}

            terms = one_copy(first(params), first(buffers), x[0] if x_dim == 0 else x, first(coefficients))
            return {k: v.unsqueeze(0) for k, v in terms.items()}
        validate = Distribution._validate_args
        Distribution.set_default_validate_args(False)  # argument checks branch on data, which vmap forbids
        try:
            return vmap(one_copy, in_dims=(0, 0, x_dim, 0), randomness="different")(params, buffers, x, coefficients)
        finally:
            Distribution.set_default_validate_args(validate)

    def training_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> Tensor | None:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        terms = self.loss_terms(x)
        self.last_terms = {k: v.detach() for k, v in terms.items()}
        losses = terms["loss"]
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = {n: float(v) for n, v, ok in zip(self.names, losses, finite) if not ok}
            if self.on_non_finite == "raise":
                raise NonFiniteLossError(f"training loss became non-finite at step {self.global_step} for copies {bad}")
            self.stop_copies({n: f"NonFiniteLossError: training loss became {v} at step {self.global_step}"
                              for n, v in bad.items()})
            if not bool(finite.any()):
                return None  # Lightning skips the optimiser step; every copy stops before the next
            losses = torch.where(finite, losses, torch.zeros_like(losses))
        if logger_writes_this_step(self):
            self.log_dict({f"train/{n}/{k}": v[i] for k, v in self.last_terms.items() for i, n in enumerate(self.names)})
        if logger_writes_this_step(self) or progress_bar_shows_loss(self):
            self.log("train/loss", losses.sum().detach(), prog_bar=True)
        return losses.sum()

    def validation_step(self, batch: tuple[Tensor, Tensor] | Tensor, batch_idx: int) -> None:
        """Every copy's loss terms on the validation batch, logged as ``val/<copy>/<term>``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        terms = self.loss_terms(x)
        self.log_dict({f"val/{n}/{k}": v[i] for k, v in terms.items() for i, n in enumerate(self.names)},
                      batch_size=x.shape[-2])

    # Stopping copies ------------------------------------------------------------------------------
    def stop_copies(self, reasons: dict[str, str]) -> None:
        """Stop the named copies (name -> reason); they are cut out before the next training step."""
        unknown = sorted(set(reasons) - set(self.names))
        if unknown:
            raise ValueError(f"no running copies named {unknown}; running: {self.names}")
        self.stopped.update(reasons)
        if self._trainer is not None and set(self.names) <= set(self.stopped):
            self.trainer.should_stop = True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        stopping = [n for n in self.names if n in self.stopped]
        if len(stopping) == len(self.names):
            return -1  # nothing left to train: end the epoch (should_stop ends the run)
        if stopping:
            self.drop_copies(stopping)
        return None

    @torch.no_grad()
    def drop_copies(self, names: Collection[str]) -> None:
        """Cut the named copies out of the parameters, buffers and optimiser state."""
        keep = [i for i, n in enumerate(self.names) if n not in names]
        if not keep:
            raise ValueError("cannot drop every copy")
        index = torch.tensor(keep, device=self.device)
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        for param in self.stacked_params:
            for optimizer in optimizers:
                state = optimizer.state.get(param, {})
                for key, value in state.items():
                    if torch.is_tensor(value) and value.shape == param.shape:
                        state[key] = value.index_select(0, index)
            param.data = param.data.index_select(0, index)
            param.grad = None
        for key in self.buffer_names:
            attribute = "stacked__" + key.replace(".", "__")
            setattr(self, attribute, getattr(self, attribute).index_select(0, index))
        self._templates = [self._templates[i] for i in keep]
        self.names = [self.names[i] for i in keep]
        self.last_terms = {k: v.index_select(0, index) for k, v in self.last_terms.items()}

    # Copies as ordinary modules -------------------------------------------------------------------
    def unstack(self, names: Sequence[str] | None = None) -> list[LatentVariableModule]:
        """Ordinary family modules holding the current parameters of the named copies (default: all)."""
        params, buffers = self._state()
        modules = []
        for name in self.names if names is None else names:
            i = self.names.index(name)
            module = copy.deepcopy(self._templates[i]).to_empty(device=self.device)
            module.load_state_dict({**{k: v[i].detach().clone() for k, v in params.items()},
                                    **{k: v[i].clone() for k, v in buffers.items()}})
            modules.append(module)
        return modules

    def copy_optimizer_state(self, name: str) -> list[dict[str, Any]]:
        """Copy ``name``'s slice of the optimiser (and schedule) state, in the layout its own module's
        ``configure_optimizers`` would save: a resumed separate run continues the same Adam."""
        i = self.names.index(name)
        if self._trainer is None or not self.trainer.optimizers:
            return []
        optimizer = self.trainer.optimizers[0]
        saved = optimizer.state_dict()  # its per-parameter dicts are the live state: build new ones
        state = {}
        for position, (key, param) in enumerate(zip(self.param_names, self.stacked_params)):
            state[position] = {
                field: self._copy_slice(key, value[i]) if torch.is_tensor(value) and value.shape == param.shape
                else (value.clone() if torch.is_tensor(value) else value)
                for field, value in saved["state"].get(position, {}).items()
            }
        return [{**saved, "state": state}]

    def _copy_slice(self, key: str, value: Tensor) -> Tensor:
        """One copy's slice of a stacked tensor, in the copy module's own layout."""
        return (value.transpose(0, 1) if key in self.transposed else value).clone()

    def configure_optimizers(self) -> Any:
        hp = self._templates[0].hparams
        if self._trainer is not None and self.trainer.gradient_clip_val:
            raise ValueError("gradient clipping by norm over stacked copies would couple them; "
                             "set trainer.gradient_clip_val to null or train the copies as separate runs")
        return adam_with_schedule(self.parameters(), hp)

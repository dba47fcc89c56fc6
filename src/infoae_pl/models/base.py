"""The shared LightningModule: networks of the probabilistic interface, Adam, and loss bookkeeping.

Family modules subclass it and implement ``loss_terms``; the base turns those terms into the loss,
logs every term by name and stops the run with a clear message when the loss stops being finite.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from infoae_pl._compat import attached_trainer
from infoae_pl._compat import logger_writes_this_step as trainer_logs_this_step
from infoae_pl.nets import LIKELIHOODS, BernoulliMLP, GaussianMLP, standard_normal_prior
from infoae_pl.validation import check_choice, check_finite_number


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss becomes NaN or infinite; the message names the offending terms."""


def logger_writes_this_step(module: L.LightningModule) -> bool:
    """Whether the trainer's loggers will write this step's values (every ``log_every_n_steps``).

    ``self.log`` costs about a millisecond per key; terms logged on other steps are never written, so
    modules log their many per-term values only on these steps.
    """
    trainer = attached_trainer(module)
    return True if trainer is None else trainer_logs_this_step(trainer)


def progress_bar_shows_loss(module: L.LightningModule) -> bool:
    """Whether a progress bar displays the training loss at every step."""
    trainer = attached_trainer(module)
    return trainer is None or trainer.progress_bar_callback is not None


def instantiate_part(option: str, part: nn.Module | Mapping[str, Any] | None) -> nn.Module | None:
    """A network part from a module, a ``{class_path, init_args}`` mapping (as checkpoints store it), or None."""
    if part is None or isinstance(part, nn.Module):
        return part
    if isinstance(part, Mapping) and isinstance(part.get("class_path"), str):
        module_name, _, class_name = part["class_path"].rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as error:
            raise ValueError(f"{option}: cannot import {part['class_path']!r} ({error})") from None
        return cls(**dict(part.get("init_args") or {}))
    raise ValueError(f"{option} must be an nn.Module, a mapping with class_path (and init_args), or null; got {part!r}")


def fused_adam(parameters: Iterable[nn.Parameter], lr: float, betas: Sequence[float]) -> torch.optim.Adam:
    """Adam, fused (one kernel over all parameters) where every parameter is a float on CPU or CUDA.

    On the paper's MNIST MLP it takes 1.8 ms a step on 2 CPU cores against 12.5 ms for the per-tensor
    loop, most of a step's time; on the conv InfoGAN's discriminator (13 M parameters in all) the
    per-tensor loop was ~15% of a step.
    """
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, betas=tuple(betas), fused=fused or None)


def adam_with_schedule(parameters: Iterable[nn.Parameter], settings: Mapping[str, Any]) -> Any:
    """:func:`fused_adam` with ``settings`` lr/betas and the optional step schedule (lr_milestones,
    lr_gamma), in Lightning's return format."""
    optimizer = fused_adam(parameters, settings["lr"], settings["betas"])
    if not settings["lr_milestones"]:
        return optimizer
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(settings["lr_milestones"]), settings["lr_gamma"])
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LatentVariableModule(L.LightningModule):
    """Encoder q(z|x), decoder p(x|z), prior N(0, I), Adam, and the loss bookkeeping of every family.

    The networks are parts: ``encoder`` (x -> a Distribution over z, with ``rsample``) and
    ``decoder`` (z -> a Distribution over x) may be any ``nn.Module``, chosen in YAML by
    ``class_path``; left null they are MLPs built from ``hidden_dim``, ``num_hidden_layers``,
    ``activation``, ``init``, ``std_transform`` and ``min_std`` (a Gaussian q(z|x), and a Bernoulli
    or Gaussian p(x|z) by ``likelihood``). Subclasses return their loss as a dict of named terms
    from ``loss_terms``; key ``"loss"`` is the quantity minimised (nats, summed over data
    dimensions, averaged over the batch).

    A family that sets some constructor arguments of its base itself names them in
    :attr:`FIXED_HPARAMS` and calls :meth:`refuse_fixed` on its ``**kwargs`` before passing them on
    to its base (LightningCLI reads the base's remaining arguments through that ``**kwargs``); they
    are left out of ``hparams``, so that ``type(module)(**module.hparams)`` rebuilds the module.
    """

    #: Constructor arguments that only set the loss's coefficients or their schedule (they enter
    #: ``coefficients`` alone), so stacked copies may differ in them; subclasses extend it.
    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = ()
    #: Base-class arguments that this class sets itself (see :meth:`refuse_fixed`).
    FIXED_HPARAMS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
        data_dim: int = 784,
        latent_dim: int = 50,
        likelihood: str = "bernoulli",
        hidden_dim: int = 1024,
        num_hidden_layers: int = 2,
        activation: str = "tanh",
        init: str = "default",
        std_transform: str = "softplus",
        min_std: float = 1e-3,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.1,
    ) -> None:
        super().__init__()
        check_choice("likelihood", likelihood, LIKELIHOODS)
        for option, value in (("data_dim", data_dim), ("latent_dim", latent_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{option} must be a positive integer, got {value!r}")
        check_finite_number("lr", lr, minimum=0.0)
        check_finite_number("lr_gamma", lr_gamma, minimum=0.0)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {tuple(betas)!r}")
        if list(lr_milestones) != sorted(set(lr_milestones)) or any(m < 1 for m in lr_milestones):
            raise ValueError(f"lr_milestones must be increasing positive step counts, got {list(lr_milestones)!r}")
        encoder, decoder = instantiate_part("encoder", encoder), instantiate_part("decoder", decoder)
        self._save_own_hyperparameters()
        self.data_dim, self.latent_dim = data_dim, latent_dim
        self.optimizer_settings = {"lr": lr, "betas": tuple(betas), "lr_milestones": tuple(lr_milestones),
                                   "lr_gamma": lr_gamma}
        net = dict(hidden_dim=hidden_dim, num_hidden_layers=num_hidden_layers, activation=activation, init=init)
        gaussian = dict(std_transform=std_transform, min_std=min_std)
        #: q(z|x) and p(x|z); the defaults are built in this order so that seeds give the same weights.
        self.encoder = encoder if encoder is not None else GaussianMLP(data_dim, latent_dim, **net, **gaussian)
        if decoder is not None:
            self.decoder: nn.Module = decoder
        elif likelihood == "bernoulli":
            self.decoder = BernoulliMLP(latent_dim, data_dim, **net)
        else:
            self.decoder = GaussianMLP(latent_dim, data_dim, **net, **gaussian)

    @classmethod
    def refuse_fixed(cls, kwargs: Mapping[str, Any]) -> None:
        """Refuse, with the reason, a user's value for an argument this class sets itself (:attr:`FIXED_HPARAMS`)."""
        clash = sorted(set(kwargs) & set(cls.FIXED_HPARAMS))
        if clash:
            raise ValueError(f"{cls.__name__} sets {', '.join(clash)} itself; remove {'it' if len(clash) == 1 else 'them'}"
                             " from the model's arguments")

    def _save_own_hyperparameters(self) -> None:
        """``save_hyperparameters`` over this object's constructor chain, less the fixed arguments and
        any network given as a module (checkpoints hold its weights; LightningCLI stores its class_path).

        Lightning collects the arguments of every enclosing ``__init__`` frame, including those of
        another module that builds this one (stacked copies): arguments that no constructor of this
        class takes are left out too.
        """
        frame = inspect.currentframe().f_back
        own = {name for cls in type(self).__mro__ if "__init__" in vars(cls)
               for name, p in inspect.signature(vars(cls)["__init__"]).parameters.items()
               if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            self.save_hyperparameters(frame=frame)
            dropped = [k for k, v in self.hparams.items() if k in self.FIXED_HPARAMS or isinstance(v, nn.Module)
                       or (k not in own and not k.startswith("_"))]
            if dropped:  # saved again, so that hparams_initial (what checkpoints store) leaves them out too
                self.save_hyperparameters(ignore=dropped, frame=frame)

    # The probabilistic interface (docs/ARCHITECTURE.md) ---------------------------------------
    def prior(self) -> Distribution:
        """p(z) = N(0, I)."""
        return standard_normal_prior(self.latent_dim, next(self.parameters()))

    def encode(self, x: Tensor) -> Distribution:
        """q(z|x)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Distribution:
        """p(x|z)."""
        return self.decoder(z)

    # Training ---------------------------------------------------------------------------------
    def coefficients(self, step: int) -> dict[str, float]:
        """The loss's multipliers at ``step`` (schedules included), as data that stacked copies can vary."""
        return {}

    def loss_terms(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """Named terms for the batch ``x`` (averaged over its last batch dimension); ``"loss"`` is minimised."""
        raise NotImplementedError

    def forward(self, x: Tensor, coefficients: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """The loss terms of ``x``; being ``forward`` lets ``torch.func.functional_call`` stack copies."""
        return self.loss_terms(x, coefficients)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        terms = self.loss_terms(batch[0])
        self._check_finite(terms["loss"], terms)
        self._log_train_terms(terms)
        return terms["loss"]

    def _check_finite(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        """Stop the run with :class:`NonFiniteLossError`, naming every term, when ``loss`` is NaN or infinite."""
        if not torch.isfinite(loss):
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.global_step} ({values}); "
                "lower the learning rate, raise min_std, or check the data"
            )

    def _log_train_terms(self, terms: dict[str, Tensor]) -> None:
        """Log every term under ``train/`` on the steps a logger writes, and the loss for the progress bar."""
        if logger_writes_this_step(self):
            self.log_dict({f"train/{k}": v for k, v in terms.items() if k != "loss"})
        if logger_writes_this_step(self) or progress_bar_shows_loss(self):
            # callback_metrics["train/loss"] therefore holds the loss of the last step it was logged at.
            self.log("train/loss", terms["loss"], prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._log_eval_terms("val", batch[0])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._log_eval_terms("test", batch[0])

    def _log_eval_terms(self, stage: str, x: Tensor) -> None:
        terms = self.loss_terms(x)
        self.log_dict({f"{stage}/{k}": v for k, v in terms.items()}, batch_size=x.shape[0])

    def configure_optimizers(self) -> Any:
        return adam_with_schedule(self.parameters(), self.optimizer_settings)

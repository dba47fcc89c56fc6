"""InfoGAN (section 2.5): an implicit generator of z = (noise, codes), a discriminator on x and a Q head on its trunk."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torchmetrics.functional.classification import multiclass_accuracy
from torchmetrics.functional.clustering import mutual_info_score

from infoae_pl.divergences import CRITIC_DIVERGENCES
from infoae_pl.models.lagrangian import LagrangianModule
from infoae_pl.nets.codes import CodeHead, FactorisedCode
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

_MI_TERM = "E_p[log q(z|x)]"


class InfoGAN(LagrangianModule):
    """L = mi_weight·(−I_p + KL(p(z|x)||q(z|x))) + JS(p(x)||q(x)), compiled to −mi_weight·E_p[log q(z|x)] + JS.

    z = (``noise_dim`` noise, a one-hot code of ``num_categories`` values, ``num_continuous``
    Gaussian codes); x = G(z), the mean of p(x|z).  The discriminator on x (``x_divergence``: ``"js"``
    as in the paper, or ``"kl"``) and Q, the head giving q(z|x) over the codes, share the critic's
    trunk; like Chen et al., the MI term trains the trunk in the critic step too, and Q and G in the
    generator step.  Validation logs ``val/code_accuracy`` (Q's argmax against the categorical code
    of generated x; chance is 1/num_categories) and ``val/code_mutual_info`` (nats).  Every other
    argument is :class:`LagrangianModule`'s.
    """

    COEFFICIENT_HPARAMS: ClassVar[tuple[str, ...]] = (*LagrangianModule.COEFFICIENT_HPARAMS, "mi_weight")
    FIXED_HPARAMS: ClassVar[tuple[str, ...]] = (
        "lagrangian", "preset", "preset_params", "implicit_generator", "latent_dim", "encoder"
    )

    def __init__(
        self,
        noise_dim: int = 62,
        num_categories: int = 10,
        num_continuous: int = 2,
        mi_weight: float = 1.0,
        x_divergence: str = "js",
        code_samples: int = 2000,
        **kwargs: Any,
    ) -> None:
        check_choice("x_divergence", x_divergence, CRITIC_DIVERGENCES)
        check_int_at_least("noise_dim", noise_dim, 0)
        check_int_at_least("num_continuous", num_continuous, 0)
        check_int_at_least("code_samples", code_samples, 1)
        if num_categories == 1 or not isinstance(num_categories, int) or num_categories < 0:
            raise ValueError(f"num_categories must be 0 or an integer >= 2, got {num_categories!r}")
        if num_categories == 0 and num_continuous == 0:
            raise ValueError("InfoGAN needs a code: set num_categories >= 2 or num_continuous >= 1")
        check_finite_number("mi_weight", mi_weight, minimum=0.0)
        self.refuse_fixed(kwargs)
        super().__init__(
            lagrangian={"I_p": -mi_weight, "KL(p(z|x)||q(z|x))": mi_weight, "JS(p(x)||q(x))": 1.0},
            preset=None,
            preset_params=None,
            x_divergence=x_divergence,
            implicit_generator=True,
            latent_dim=noise_dim + num_categories + num_continuous,
            encoder=None,
            **kwargs,
        )
        # Q shares the discriminator's trunk (its ``trunk`` and ``feature_dim``); the base built a
        # default encoder first, which Q replaces (kept so that seeds give the same weights).
        critic = self.critics.network("JS(p(x)||q(x))")
        if not (isinstance(getattr(critic, "trunk", None), nn.Module) and isinstance(getattr(critic, "feature_dim", None), int)):
            raise ValueError("InfoGAN's x_critic must expose `trunk` (a module) and `feature_dim` (an int) for its Q head")
        self.encoder = CodeHead(
            critic.trunk, critic.feature_dim, noise_dim, num_categories, num_continuous, self.hparams.get("min_std", 1e-3)
        )
        self.code_sizes = (noise_dim, num_categories, num_continuous)
        self.code_samples = code_samples

    def prior(self) -> Distribution:
        """p(z): standard normal noise and continuous codes, a uniform one-hot categorical code."""
        return FactorisedCode.prior(*self.code_sizes, like=next(self.decoder.parameters()))

    def critic_loss(self, x: Tensor) -> Tensor:
        """The discriminator's loss plus the MI term, which trains the trunk shared with Q."""
        z = self.prior().sample(x.shape[:-1])
        with torch.no_grad():
            x_p = self.sample_x(z)
        mi = self.plan.components[_MI_TERM] * self.encode(x_p).log_prob(z).mean(-1)
        return super().critic_loss(x) + mi

    def latent_grid(self, samples_per_row: int) -> tuple[Tensor, list[str]]:
        """One row per categorical code value, noise shared down each column, continuous codes at 0."""
        noise_dim, categories, continuous = self.code_sizes
        like = next(self.decoder.parameters())
        noise = torch.randn(samples_per_row, noise_dim, dtype=like.dtype, device=like.device)
        rows = []
        for value in range(categories):
            code = like.new_zeros(samples_per_row, categories)
            code[:, value] = 1.0
            rows.append(torch.cat([noise, code, like.new_zeros(samples_per_row, continuous)], -1))
        return torch.cat(rows), [f"c = {value}" for value in range(categories)]

    def on_validation_epoch_end(self) -> None:
        if self.code_sizes[1] == 0 or self.trainer.sanity_checking:
            return
        with torch.no_grad():
            z = self.prior().sample(torch.Size([self.code_samples]))
            posterior = self.encode(self.sample_x(z))
        code = self.prior().split(z)[1].argmax(-1)
        predicted = posterior.logits.argmax(-1)
        accuracy = multiclass_accuracy(predicted, code, self.code_sizes[1], average="micro")
        self.log("val/code_accuracy", accuracy)
        self.log("val/code_mutual_info", mutual_info_score(predicted, code))

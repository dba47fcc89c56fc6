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
from infoae_pl.nets.augment import RandomAffine
from infoae_pl.nets.codes import CODE_PRIORS, CodeHead, FactorisedCode
from infoae_pl.nets.conv import IMAGE_DIM
from infoae_pl.validation import check_choice, check_finite_number, check_int_at_least

_MI_TERM = "E_p[log q(z|x)]"
#: Where Q's head is trained: in the generator step (with G) or in the critic step (with the discriminator).
Q_OPTIMIZERS = ("generator", "critic")


class InfoGAN(LagrangianModule):
    """L = mi_weight·(−I_p + KL(p(z|x)||q(z|x))) + JS(p(x)||q(x)), compiled to −mi_weight·E_p[log q(z|x)] + JS.

    z = (``noise_dim`` noise, a one-hot code of ``num_categories`` values, ``num_continuous``
    Gaussian codes); x = G(z), the mean of p(x|z).  The discriminator on x (``x_divergence``: ``"js"``
    as in the paper, or ``"kl"``) and Q, the head giving q(z|x) over the codes, share the critic's
    trunk. The MI term trains Q's head (``q_hidden_dim`` units of fully connected, batch norm, leaky
    ReLU, then the outputs, as in Chen et al.'s appendix C.1; 0: linear) and G in the generator step;
    the trunk learns from the discriminator's loss alone unless ``q_trains_trunk`` adds the MI term to
    the critic step too; ``q_optimizer="critic"`` then trains Q's head in that step as well, with the
    discriminator's optimiser and learning rate, not in the generator step (both as Chen et al.'s code
    did). ``code_prior`` draws the noise and the continuous codes from N(0, 1) or, as Chen et al.'s code,
    U(−1, 1). ``code_augmentation`` (e.g. :class:`~infoae_pl.nets.RandomAffine`) adds Q's
    log-likelihood of the categorical code from T(G(z)) to the MI term's estimate, so that the code G
    gains from is one a small rotation, zoom or shift leaves readable: the digit rather than its slant.
    ``continuous_std`` fixes q(u|x)'s std for the
    continuous codes (as Chen et al.'s MNIST code did; None: Q outputs it). On the conv MNIST networks a
    learned std let Q shrink it until the MI term's gradient reaching G was ~30× the GAN term's (measured
    at step 50) and G drew noise; fixed at 1 the two are of one order and the codes pick digits.
    Validation logs ``val/code_accuracy`` (Q's argmax against the categorical code
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
        q_hidden_dim: int = 128,
        continuous_std: float | None = 1.0,
        q_trains_trunk: bool = False,
        q_optimizer: str = "generator",
        code_prior: str = "normal",
        code_augmentation: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("x_divergence", x_divergence, CRITIC_DIVERGENCES)
        check_choice("q_optimizer", q_optimizer, Q_OPTIMIZERS)
        check_choice("code_prior", code_prior, CODE_PRIORS)
        if q_optimizer == "critic" and not q_trains_trunk:
            raise ValueError("q_optimizer='critic' trains Q's head on the MI term in the critic step: set q_trains_trunk: true too")
        check_int_at_least("noise_dim", noise_dim, 0)
        check_int_at_least("num_continuous", num_continuous, 0)
        check_int_at_least("code_samples", code_samples, 1)
        check_int_at_least("q_hidden_dim", q_hidden_dim, 0)
        if continuous_std is not None:
            check_finite_number("continuous_std", continuous_std, minimum=0.0)
            if continuous_std <= 0:
                raise ValueError(f"continuous_std must be > 0 or null (Q outputs the std), got {continuous_std!r}")
        if num_categories == 1 or not isinstance(num_categories, int) or num_categories < 0:
            raise ValueError(f"num_categories must be 0 or an integer >= 2, got {num_categories!r}")
        if num_categories == 0 and num_continuous == 0:
            raise ValueError("InfoGAN needs a code: set num_categories >= 2 or num_continuous >= 1")
        check_finite_number("mi_weight", mi_weight, minimum=0.0)
        if code_augmentation is not None and num_categories == 0:
            raise ValueError("code_augmentation makes the categorical code survive augmentation: it needs num_categories >= 2")
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
            critic.trunk, critic.feature_dim, noise_dim, num_categories, num_continuous, self.hparams.get("min_std", 1e-3),
            q_hidden_dim, continuous_std, code_prior,
        )
        self.code_sizes = (noise_dim, num_categories, num_continuous)
        self.code_samples = code_samples
        self.q_trains_trunk = q_trains_trunk
        self.q_optimizer = q_optimizer
        self.code_prior = code_prior
        if isinstance(code_augmentation, RandomAffine) and self.data_dim != IMAGE_DIM:
            raise ValueError(f"code_augmentation RandomAffine transforms 1×28×28 images (data_dim {IMAGE_DIM}), "
                             f"got data_dim={self.data_dim}")
        self.code_augmentation = code_augmentation

    def prior(self) -> Distribution:
        """p(z): noise and continuous codes N(0, 1) or U(−1, 1) (``code_prior``), a uniform one-hot categorical code."""
        return FactorisedCode.prior(*self.code_sizes, like=next(self.decoder.parameters()), code_prior=self.code_prior)

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critics' parameters, and with ``q_optimizer="critic"`` Q's head's too."""
        head = list(self.encoder.head.parameters()) if self.q_optimizer == "critic" else []
        return super().critic_parameters() + head

    def critic_loss(self, x: Tensor) -> Tensor:
        """The discriminator's loss; with ``q_trains_trunk`` plus the MI term (at this step's coefficient),
        which then trains the trunk shared with Q too."""
        loss = super().critic_loss(x)
        if not self.q_trains_trunk:
            return loss
        z = self.prior().sample(x.shape[:-1])
        with torch.no_grad():
            x_p = self.sample_x(z)
        coefficient = self.coefficients(self.global_step)[_MI_TERM]
        return loss + coefficient * self.log_q_generated(x_p, z).mean(-1)

    def log_q_generated(self, x: Tensor, z: Tensor) -> Tensor:
        """log q(z|x); with ``code_augmentation`` T plus log q(c|T(x)), Q's log-likelihood of the categorical
        code from an augmented image (a lower bound on I(c; T(x)) ≤ I(c; x) up to H(c), in both steps)."""
        log_q = super().log_q_generated(x, z)
        if self.code_augmentation is None:
            return log_q
        return log_q + self.encode(self.code_augmentation(x)).log_prob_code(z)

    def latent_grid(self, samples_per_row: int) -> tuple[Tensor, list[str]]:
        """One row per categorical code value; the columns sweep each continuous code in turn from −2 to 2
        (the others at 0) with one noise vector shared by the whole grid, as in Chen et al.'s figures;
        without continuous codes the columns vary the noise instead (shared down each column)."""
        noise_dim, categories, continuous = self.code_sizes
        like = next(self.decoder.parameters())
        if continuous:
            per_code = max(samples_per_row // continuous, 1)
            sweep = torch.linspace(-2.0, 2.0, per_code, dtype=like.dtype, device=like.device) if per_code > 1 \
                else like.new_zeros(1)
            codes = like.new_zeros(samples_per_row, continuous)
            for index in range(min(continuous, samples_per_row)):
                codes[index * per_code:(index + 1) * per_code, index] = sweep
            noise = self.prior().noise.sample(torch.Size([1, noise_dim])).expand(samples_per_row, noise_dim)
        else:
            codes = like.new_zeros(samples_per_row, 0)
            noise = self.prior().noise.sample(torch.Size([samples_per_row, noise_dim]))
        rows = []
        for value in range(max(categories, 1)):
            code = like.new_zeros(samples_per_row, categories)
            if categories:
                code[:, value] = 1.0
            rows.append(torch.cat([noise, code, codes], -1))
        return torch.cat(rows), [f"c = {value}" for value in range(categories)] or ["continuous codes"]

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

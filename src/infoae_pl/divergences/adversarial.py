"""Adversarial (critic-based) estimates of D(P ‖ Q) from samples a ~ P ``[n, d]`` and b ~ Q ``[m, d]``, in nats.

A critic T maps ``[..., d]`` to one logit per example. It is trained with :meth:`AdversarialDivergence.critic_loss`
on detached samples; :meth:`AdversarialDivergence.estimate` then gives the divergence term of the
generator's loss. ``"js"`` is the GAN bound: max_T E_a log σ(T) + E_b log(1 − σ(T)) = 2·JS − log 4.
``"kl"`` is the f-GAN/NWJ bound KL(P ‖ Q) ≥ E_a T − E_b exp(T − 1), tight at T = 1 + log(p/q).
The reverse KL(Q ‖ P) is the same estimator with the arguments swapped: callers pass (a, b) in the
order the term names them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoae_pl.validation import check_choice, check_finite_number

CRITIC_DIVERGENCES = ("js", "kl")
GENERATOR_LOSSES = ("non_saturating", "minimax")


class AdversarialDivergence(nn.Module):
    """A critic-based estimate of JS or KL between two samples, with its critic loss and generator gradient.

    ``generator_loss="minimax"`` differentiates the estimate itself; ``"non_saturating"`` (JS only)
    keeps the estimate's value but takes the gradient of Goodfellow's non-saturating loss with swapped
    labels on both samples (in BiGAN-style joints both depend on the generator). ``gradient_penalty`` γ
    adds γ·E‖∇_u T(u)‖² at random interpolates of a and b to the critic loss (zero-centred penalty).
    """

    def __init__(
        self,
        critic: nn.Module,
        divergence: str = "js",
        generator_loss: str = "non_saturating",
        gradient_penalty: float = 0.0,
    ) -> None:
        super().__init__()
        check_choice("divergence", divergence, CRITIC_DIVERGENCES)
        check_choice("generator_loss", generator_loss, GENERATOR_LOSSES)
        check_finite_number("gradient_penalty", gradient_penalty, minimum=0.0)
        if divergence == "kl" and generator_loss == "non_saturating":
            raise ValueError(
                "generator_loss='non_saturating' is defined only with divergence='js'; "
                "with divergence='kl' choose generator_loss='minimax'"
            )
        self.critic = critic
        self.divergence = divergence
        self.generator_loss = generator_loss
        self.gradient_penalty = float(gradient_penalty)

    def critic_loss(self, a: Tensor, b: Tensor) -> Tensor:
        """What the critic's optimiser minimises, from samples a ~ P and b ~ Q (callers detach them).

        JS: the GAN discriminator's cross-entropy with a labelled real; KL: the negated NWJ lower bound.
        """
        t_a, t_b = self.critic(a), self.critic(b)
        if self.divergence == "js":
            loss = F.softplus(-t_a).mean() + F.softplus(t_b).mean()
        else:
            loss = -(t_a.mean() - (t_b - 1.0).exp().mean())
        if self.gradient_penalty > 0:
            loss = loss + self.gradient_penalty * self._penalty(a, b)
        return loss

    def _penalty(self, a: Tensor, b: Tensor) -> Tensor:
        """E‖∇_u T(u)‖² at u = t·a + (1 − t)·b, t ~ U(0, 1) per example, differentiable in the critic.

        Summing T over the batch before differentiating gives per-example gradients because the
        critic treats examples independently.
        """
        if a.shape != b.shape:
            raise ValueError(
                f"gradient_penalty > 0 needs samples a and b of equal shape to interpolate, "
                f"got {tuple(a.shape)} and {tuple(b.shape)}"
            )
        t = torch.rand((a.shape[0],) + (1,) * (a.dim() - 1), dtype=a.dtype, device=a.device)
        u = (t * a.detach() + (1.0 - t) * b.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(u).sum(), u, create_graph=True)
        return grad.square().flatten(1).sum(1).mean()

    def estimate(self, a: Tensor, b: Tensor) -> Tensor:
        """The divergence estimate D(P ‖ Q) in nats at the current critic, a 0-d tensor for the generator's loss.

        The value is always the estimate, so a loss Σ coefficient·term adds up exactly; with the
        non-saturating generator loss only the gradient (into a and b) is that of
        ½·(E_a softplus(T) + E_b softplus(−T)). The critic's parameters get gradients too, which the
        generator's optimiser ignores.
        """
        t_a, t_b = self.critic(a), self.critic(b)
        if self.divergence == "kl":
            return t_a.mean() - (t_b - 1.0).exp().mean()
        value = math.log(2.0) - 0.5 * (F.softplus(-t_a).mean() + F.softplus(t_b).mean())
        if self.generator_loss == "minimax":
            return value
        non_saturating = 0.5 * (F.softplus(t_a).mean() + F.softplus(-t_b).mean())
        return value.detach() + (non_saturating - non_saturating.detach())

"""The critics of a Lagrangian's adversarially estimated divergences, and their training step's loss.

One critic per divergence term estimated by ``"js"`` (a GAN discriminator) or ``"kl"`` (an f-GAN
bound): a network of the term's pair (x, z or the joint (x, z)), given as a part or built as the
default MLP, wrapped in :class:`~infoae_pl.divergences.AdversarialDivergence`. The module that owns
them alternates ``steps`` critic updates with one update of its encoder and generator.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from infoae_pl.divergences import AdversarialDivergence
from infoae_pl.models.base import fused_adam
from infoae_pl.models.estimation import DIVERGENCE_PAIRS, Samples

#: The constructor argument that sets a pair's critic network.
CRITIC_ARGUMENTS = {"x": "x_critic", "z": "z_critic", "x,z": "joint_critic"}


def critic_key(term: str) -> str:
    """A module name for the critic of ``term`` (``JS(q(x,z)||p(x,z))`` -> ``JS_q_x_z_p_x_z``)."""
    return re.sub(r"\W+", "_", term).strip("_")


class Critics(nn.ModuleDict):
    """Critic of each term in ``divergences`` (term -> ``"js"`` | ``"kl"``), keyed by :func:`critic_key`.

    ``networks`` gives a pair's critic network (pair -> module taking ``[..., width]`` to one logit per
    example; a second term of the same pair gets a copy); pairs without one get ``default(width)``,
    ``widths`` giving each pair's input width. ``generator_loss`` applies to JS critics (KL critics
    are minimax), ``gradient_penalty`` to all; ``lr``/``betas`` set the critics' Adam.
    """

    def __init__(
        self,
        divergences: Mapping[str, str],
        networks: Mapping[str, nn.Module | None],
        default: Callable[[int], nn.Module],
        widths: Mapping[str, int],
        generator_loss: str,
        gradient_penalty: float,
        steps: int,
        lr: float,
        betas: tuple[float, float],
    ) -> None:
        super().__init__()
        used: set[str] = set()
        for term, divergence in divergences.items():
            pair = DIVERGENCE_PAIRS[term]
            given = networks.get(pair)
            network = default(widths[pair]) if given is None else (copy.deepcopy(given) if pair in used else given)
            used.add(pair)
            self[critic_key(term)] = AdversarialDivergence(
                network,
                divergence=divergence,
                generator_loss=generator_loss if divergence == "js" else "minimax",
                gradient_penalty=gradient_penalty,
            )
        #: term name -> key in this dict.
        self.keys_by_term = {term: critic_key(term) for term in divergences}
        self.steps = steps
        self.optimizer_settings: dict[str, Any] = {"lr": lr, "betas": tuple(betas)}

    @property
    def pairs(self) -> set[str]:
        """The pairs ("x", "z", "x,z") that some critic compares."""
        return {DIVERGENCE_PAIRS[term] for term in self.keys_by_term}

    def network(self, term: str) -> nn.Module:
        """The critic network of ``term`` (for heads that share its trunk, such as InfoGAN's Q)."""
        return self[self.keys_by_term[term]].critic

    def estimate(self, term: str, first: Tensor, second: Tensor) -> Tensor:
        """The critic's estimate of ``term`` from samples of the distribution it names first and of the other."""
        return self[self.keys_by_term[term]].estimate(first, second)

    def loss(self, samples: Samples) -> Tensor:
        """The critics' summed loss on ``samples`` (drawn without gradient)."""
        return sum(self[key].critic_loss(*samples.of_divergence(term)) for term, key in self.keys_by_term.items())

    def optimizer(self, parameters: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
        """Fused Adam with the critics' settings over ``parameters`` (default: every critic's)."""
        return fused_adam(self.parameters() if parameters is None else parameters, **self.optimizer_settings)


def check_critic_network(pair: str, network: Any) -> None:
    """Refuse, naming the argument, a critic part that is not an ``nn.Module``."""
    if network is not None and not isinstance(network, nn.Module):
        raise ValueError(f"{CRITIC_ARGUMENTS[pair]} must be an nn.Module (or null for the default MLP), got {network!r}")

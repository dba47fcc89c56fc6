"""Critic networks for adversarial divergence estimates: a feature trunk and a scalar logit head."""

from __future__ import annotations

from torch import Tensor, nn

from infoae_pl.nets.mlp import mlp
from infoae_pl.validation import check_int_at_least


class MLPCritic(nn.Module):
    """u ``[..., in_dim]`` -> one logit per example ``[...]``, as ``head(trunk(u))``.

    The trunk (every layer but the last, activation included) is a separate attribute because
    InfoGAN's Q head shares it; with ``num_hidden_layers=0`` it is the identity and the critic is linear.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 256,
        num_hidden_layers: int = 2,
        activation: str = "leaky_relu",
        init: str = "default",
    ) -> None:
        super().__init__()
        check_int_at_least("in_dim", in_dim, 1)
        check_int_at_least("hidden_dim", hidden_dim, 1)
        check_int_at_least("num_hidden_layers", num_hidden_layers, 0)
        # One mlp split before its output layer, so the init and layer layout are exactly mlp's.
        net = mlp(in_dim, 1, hidden_dim, num_hidden_layers, activation, init)
        self.trunk: nn.Module = net[:-1] if num_hidden_layers > 0 else nn.Identity()
        self.feature_dim: int = hidden_dim if num_hidden_layers > 0 else in_dim
        self.head: nn.Linear = net[-1]

    def features(self, u: Tensor) -> Tensor:
        """The trunk's features ``[..., feature_dim]``, shared with heads other than the logit."""
        return self.trunk(u)

    def forward(self, u: Tensor) -> Tensor:
        """One real-valued logit per example, the last dimension squeezed away."""
        return self.head(self.features(u)).squeeze(-1)

"""Multi-layer perceptrons with the activations and initialisations the paper's experiments use."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn

from infoae_pl.validation import check_choice

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),  # the slope of the authors' Figure 1 code
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}
INITS = ("default", "glorot_uniform", "glorot_normal", "he_normal")


def mlp(
    in_dim: int,
    out_dim: int,
    hidden_dim: int = 1024,
    num_hidden_layers: int = 2,
    activation: str = "tanh",
    init: str = "default",
) -> nn.Sequential:
    """An MLP ``in_dim -> [hidden_dim] * num_hidden_layers -> out_dim`` (no activation on the output)."""
    check_choice("activation", activation, tuple(ACTIVATIONS))
    check_choice("init", init, INITS)
    if min(in_dim, out_dim) < 1 or hidden_dim < 1 or num_hidden_layers < 0:
        raise ValueError(
            f"mlp sizes must be positive: in_dim={in_dim}, out_dim={out_dim}, "
            f"hidden_dim={hidden_dim}, num_hidden_layers={num_hidden_layers}"
        )
    dims = [in_dim] + [hidden_dim] * num_hidden_layers + [out_dim]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(ACTIVATIONS[activation]())
    net = nn.Sequential(*layers)
    if init != "default":
        for layer in net:
            if isinstance(layer, nn.Linear):
                _initialise(layer, init)
    return net


def _initialise(layer: nn.Linear, init: str) -> None:
    """Weights by the named scheme, zero biases (as in the authors' TensorFlow code)."""
    if init == "glorot_uniform":
        nn.init.xavier_uniform_(layer.weight)
    elif init == "glorot_normal":
        nn.init.xavier_normal_(layer.weight)
    elif init == "he_normal":
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    with torch.no_grad():
        layer.bias.zero_()

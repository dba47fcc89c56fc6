"""Convolutional parts for 28×28 one-channel images, in the style of InfoGAN's MNIST networks and DCGAN.

Shapes follow Chen et al. (2016, appendix C.1): the discriminator's trunk is a 4×4 stride-2 convolution
(``channels``, leaky ReLU), a 4×4 stride-2 convolution (2·``channels``, batch norm, leaky ReLU) and a
fully connected layer (``hidden_dim``, batch norm, leaky ReLU); the generator mirrors it with a fully
connected layer (``hidden_dim``), one to 7×7×2·``channels`` (batch norm and ReLU after each) and two 4×4
stride-2 transposed convolutions (batch norm and ReLU between them). ``batch_norm=False`` leaves batch
norm out (a critic with ``gradient_penalty`` needs that: batch norm couples the examples of a batch);
a layer followed by batch norm has no bias (batch norm's shift replaces it, as in DCGAN).

Every part takes and returns flat ``[..., 784]`` images like the MLP parts (any number of leading batch
dimensions, reshaped inside), and the encoder and decoder return ``torch.distributions`` objects with
the event dimensions reinterpreted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from infoae_pl.nets.heads import LIKELIHOODS, STD_TRANSFORMS
from infoae_pl.nets.mlp import ACTIVATIONS
from infoae_pl.validation import check_choice, check_int_at_least

#: The images these parts take: one channel, 28×28, flattened to 784 values.
IMAGE_SHAPE = (1, 28, 28)
IMAGE_DIM = math.prod(IMAGE_SHAPE)
CONV_INITS = ("dcgan", "default")
_SIDE_AFTER_TWO_STRIDES = IMAGE_SHAPE[1] // 4


def _check_image_dim(option: str, value: int) -> None:
    """Refuse, by name, a width other than the 784 values of a 28×28 image."""
    if value != IMAGE_DIM:
        raise ValueError(f"{option} must be {IMAGE_DIM} (a flattened 1×28×28 image) for the convolutional parts, "
                         f"got {value!r}")


def _check_common(channels: int, hidden_dim: int, init: str) -> None:
    check_int_at_least("channels", channels, 1)
    check_int_at_least("hidden_dim", hidden_dim, 1)
    check_choice("init", init, CONV_INITS)


def _norm(kind: type[nn.Module], width: int, batch_norm: bool) -> list[nn.Module]:
    return [kind(width)] if batch_norm else []


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: weights N(0, 0.02²), batch-norm scales N(1, 0.02²), zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


class FlatBatch(nn.Module):
    """Runs ``net`` on ``[N, width]`` for inputs ``[..., width]``: the leading dimensions are flattened and restored."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, u: Tensor) -> Tensor:
        out = self.net(u.reshape(-1, u.shape[-1]))
        return out.reshape(*u.shape[:-1], *out.shape[1:])


def conv_trunk(channels: int = 64, hidden_dim: int = 1024, batch_norm: bool = True,
               activation: str = "leaky_relu") -> FlatBatch:
    """The discriminator's trunk: ``[..., 784]`` images -> ``[..., hidden_dim]`` features."""
    check_choice("activation", activation, tuple(ACTIVATIONS))
    act = ACTIVATIONS[activation]
    flat = 2 * channels * _SIDE_AFTER_TWO_STRIDES**2
    return FlatBatch(nn.Sequential(
        nn.Unflatten(1, IMAGE_SHAPE),
        nn.Conv2d(IMAGE_SHAPE[0], channels, 4, stride=2, padding=1), act(),
        nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1, bias=not batch_norm),
        *_norm(nn.BatchNorm2d, 2 * channels, batch_norm), act(),
        nn.Flatten(),
        nn.Linear(flat, hidden_dim, bias=not batch_norm), *_norm(nn.BatchNorm1d, hidden_dim, batch_norm), act(),
    ))


def _gaussian(mean: Tensor, raw: Tensor, std_transform: str, min_std: float) -> Distribution:
    """N(mean, diag(std²)) over the last dimension with std = transform(raw) + min_std."""
    std = {"softplus": F.softplus, "sigmoid": torch.sigmoid, "exp": torch.exp}[std_transform](raw)
    return Independent(Normal(mean, std + min_std, validate_args=False), 1, validate_args=False)


class ConvEncoder(nn.Module):
    """q(z|x) = N(mean(x), diag(std(x)²)) for ``[..., 784]`` images, on the discriminator's convolutional trunk.

    ``out_dim`` is the latent dimension; ``std_transform`` and ``min_std`` as in :class:`GaussianMLP`.
    """

    def __init__(
        self,
        in_dim: int = IMAGE_DIM,
        out_dim: int = 10,
        channels: int = 64,
        hidden_dim: int = 1024,
        batch_norm: bool = True,
        activation: str = "leaky_relu",
        std_transform: str = "softplus",
        min_std: float = 1e-3,
        init: str = "dcgan",
    ) -> None:
        super().__init__()
        _check_image_dim("in_dim", in_dim)
        check_int_at_least("out_dim", out_dim, 1)
        _check_common(channels, hidden_dim, init)
        check_choice("std_transform", std_transform, STD_TRANSFORMS)
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std}")
        self.out_dim, self.std_transform, self.min_std = out_dim, std_transform, min_std
        self.trunk = conv_trunk(channels, hidden_dim, batch_norm, activation)
        self.head = nn.Linear(hidden_dim, 2 * out_dim)
        if init == "dcgan":
            _dcgan_init(self)

    def forward(self, x: Tensor) -> Distribution:
        mean, raw = self.head(self.trunk(x)).chunk(2, dim=-1)
        return _gaussian(mean, raw, self.std_transform, self.min_std)


class ConvDecoder(nn.Module):
    """p(x|z) over ``[..., 784]`` images by transposed convolutions: Bernoulli(logits) or Gaussian(mean, std).

    As an implicit generator (``implicit_generator=True``) G(z) is the mean: sigmoid(logits) in [0, 1]
    for ``likelihood="bernoulli"``, the Gaussian's mean otherwise (its std is a second output channel,
    ``std_transform(raw) + min_std``).
    """

    def __init__(
        self,
        in_dim: int = 10,
        out_dim: int = IMAGE_DIM,
        likelihood: str = "bernoulli",
        channels: int = 64,
        hidden_dim: int = 1024,
        batch_norm: bool = True,
        std_transform: str = "softplus",
        min_std: float = 1e-3,
        init: str = "dcgan",
    ) -> None:
        super().__init__()
        check_int_at_least("in_dim", in_dim, 1)
        _check_image_dim("out_dim", out_dim)
        _check_common(channels, hidden_dim, init)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("std_transform", std_transform, STD_TRANSFORMS)
        if not min_std >= 0:
            raise ValueError(f"min_std must be >= 0, got {min_std}")
        self.likelihood, self.std_transform, self.min_std = likelihood, std_transform, min_std
        side = _SIDE_AFTER_TWO_STRIDES
        outputs = IMAGE_SHAPE[0] * (1 if likelihood == "bernoulli" else 2)
        self.net = FlatBatch(nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=not batch_norm), *_norm(nn.BatchNorm1d, hidden_dim, batch_norm), nn.ReLU(),
            nn.Linear(hidden_dim, 2 * channels * side * side, bias=not batch_norm),
            *_norm(nn.BatchNorm1d, 2 * channels * side * side, batch_norm), nn.ReLU(),
            nn.Unflatten(1, (2 * channels, side, side)),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, bias=not batch_norm),
            *_norm(nn.BatchNorm2d, channels, batch_norm), nn.ReLU(),
            nn.ConvTranspose2d(channels, outputs, 4, stride=2, padding=1),
            nn.Flatten(),
        ))
        if init == "dcgan":
            _dcgan_init(self)

    def forward(self, z: Tensor) -> Distribution:
        out = self.net(z)
        if self.likelihood == "bernoulli":
            # validate_args=False: grey levels in [0, 1] are scored too (the usual continuous relaxation).
            return Independent(Bernoulli(logits=out, validate_args=False), 1, validate_args=False)
        mean, raw = out.split(IMAGE_DIM, dim=-1)
        return _gaussian(mean, raw, self.std_transform, self.min_std)


class ConvCritic(nn.Module):
    """A DCGAN/InfoGAN discriminator: ``[..., 784]`` images -> one logit per example, as ``head(trunk(x))``.

    ``trunk`` (features ``[..., feature_dim]``) is a separate attribute because InfoGAN's Q head shares it.
    """

    def __init__(
        self,
        in_dim: int = IMAGE_DIM,
        channels: int = 64,
        hidden_dim: int = 1024,
        batch_norm: bool = True,
        activation: str = "leaky_relu",
        init: str = "dcgan",
    ) -> None:
        super().__init__()
        _check_image_dim("in_dim", in_dim)
        _check_common(channels, hidden_dim, init)
        self.trunk = conv_trunk(channels, hidden_dim, batch_norm, activation)
        self.feature_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, 1)
        if init == "dcgan":
            _dcgan_init(self)

    def forward(self, x: Tensor) -> Tensor:
        """One real-valued logit per example, the last dimension squeezed away."""
        return self.head(self.trunk(x)).squeeze(-1)


class JointTrunk(nn.Module):
    """(x, z) ``[..., 784 + latent_dim]`` -> features: the convolutional trunk on x and an MLP on z, concatenated
    and mixed by one fully connected layer."""

    def __init__(self, latent_dim: int, channels: int, hidden_dim: int, z_hidden_dim: int, batch_norm: bool,
                 activation: str) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.x_trunk = conv_trunk(channels, hidden_dim, batch_norm, activation)
        self.z_trunk = nn.Sequential(nn.Linear(latent_dim, z_hidden_dim), ACTIVATIONS[activation]())
        self.mix = nn.Sequential(nn.Linear(hidden_dim + z_hidden_dim, hidden_dim), ACTIVATIONS[activation]())

    def forward(self, u: Tensor) -> Tensor:
        x, z = u.split([IMAGE_DIM, self.latent_dim], dim=-1)
        return self.mix(torch.cat([self.x_trunk(x), self.z_trunk(z)], -1))


class ConvJointCritic(nn.Module):
    """A BiGAN/ALI discriminator D(x, z) on ``[..., 784 + latent_dim]`` (x first, as the critics of the
    joint pair receive it) -> one logit per example; ``trunk`` gives ``[..., feature_dim]`` features."""

    def __init__(
        self,
        latent_dim: int = 10,
        channels: int = 64,
        hidden_dim: int = 1024,
        z_hidden_dim: int = 512,
        batch_norm: bool = True,
        activation: str = "leaky_relu",
        init: str = "dcgan",
    ) -> None:
        super().__init__()
        check_int_at_least("latent_dim", latent_dim, 1)
        check_int_at_least("z_hidden_dim", z_hidden_dim, 1)
        _check_common(channels, hidden_dim, init)
        self.trunk = JointTrunk(latent_dim, channels, hidden_dim, z_hidden_dim, batch_norm, activation)
        self.feature_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, 1)
        if init == "dcgan":
            _dcgan_init(self)

    def forward(self, u: Tensor) -> Tensor:
        """One real-valued logit per example, the last dimension squeezed away."""
        return self.head(self.trunk(u)).squeeze(-1)

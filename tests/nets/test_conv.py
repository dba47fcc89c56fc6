"""The convolutional parts: the InfoGAN/DCGAN layer layout, shapes over any leading batch dimensions, and
distributions whose densities equal an independent computation from the network's raw outputs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from infoae_pl.models import InfoGAN
from infoae_pl.models.base import instantiate_part
from infoae_pl.nets import ConvCritic, ConvDecoder, ConvEncoder, ConvJointCritic

SMALL = dict(channels=4, hidden_dim=16)


def _images(*shape):
    return torch.rand(*shape, 784)


def test_the_critic_has_the_infogan_discriminator_layout():
    """4×4 stride-2 convolutions of 64 and 128 channels, batch norm after the second convolution and the
    1024-unit layer (Chen et al. 2016, appendix C.1), leaky ReLU, one logit."""
    critic = ConvCritic()
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 64, (4, 4), (2, 2)), (64, 128, (4, 4), (2, 2))]
    layers = list(critic.trunk.net)
    kinds = [type(m).__name__ for m in layers]
    assert kinds == ["Unflatten", "Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Flatten", "Linear",
                     "BatchNorm1d", "LeakyReLU"]
    assert layers[7].in_features == 128 * 7 * 7 and critic.feature_dim == 1024 == critic.head.in_features
    assert not any(isinstance(m, nn.modules.batchnorm.BatchNorm2d) for m in ConvCritic(batch_norm=False).modules())


def test_the_generator_has_the_infogan_layout():
    """FC 1024, FC 7×7×128 (batch norm and ReLU after each), 4×4 stride-2 transposed convolutions to 64
    channels (batch norm, ReLU) and to one channel."""
    decoder = ConvDecoder(in_dim=74)
    kinds = [type(m).__name__ for m in decoder.net.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Unflatten", "ConvTranspose2d",
                     "BatchNorm2d", "ReLU", "ConvTranspose2d", "Flatten"]
    transposed = [m for m in decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.stride) for c in transposed] == [(128, 64, (2, 2)), (64, 1, (2, 2))]


@pytest.mark.parametrize("leading", [(5,), (3, 4)])
def test_encoder_gives_a_gaussian_with_one_log_density_per_example(leading):
    encoder = ConvEncoder(out_dim=6, min_std=0.01, **SMALL).eval()
    x = _images(*leading)
    q = encoder(x)
    assert q.batch_shape == leading and q.event_shape == (6,)
    z = q.rsample()
    assert z.shape == (*leading, 6)
    mean, raw = encoder.head(encoder.trunk(x)).chunk(2, -1)
    std = F.softplus(raw) + 0.01
    expected = torch.distributions.Normal(mean, std).log_prob(z).sum(-1)
    torch.testing.assert_close(q.log_prob(z), expected)
    assert (q.stddev >= 0.01).all()


def test_leading_dimensions_are_the_flattened_batch():
    """In evaluation mode (batch norm by running statistics) [3, 4, 784] gives the [12, 784] numbers reshaped."""
    torch.manual_seed(0)
    x = _images(3, 4)
    for net in (ConvCritic(**SMALL), ConvEncoder(out_dim=3, **SMALL)):
        net.eval()
        out = net(x)
        flat = net(x.reshape(12, 784))
        if isinstance(out, torch.Tensor):
            torch.testing.assert_close(out, flat.reshape(3, 4))
        else:
            torch.testing.assert_close(out.mean, flat.mean.reshape(3, 4, 3))


def test_bernoulli_decoder_log_density_is_the_summed_binary_cross_entropy():
    decoder = ConvDecoder(in_dim=5, **SMALL)
    z = torch.randn(7, 5)
    p = decoder(z)
    assert p.batch_shape == (7,) and p.event_shape == (784,)
    logits = decoder.net(z)
    x = torch.bernoulli(torch.full((7, 784), 0.3))
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(p.log_prob(x), expected)
    torch.testing.assert_close(p.mean, torch.sigmoid(logits))  # G(z) for an implicit generator, in [0, 1]


def test_gaussian_decoder_has_a_mean_channel_and_a_std_channel():
    decoder = ConvDecoder(in_dim=5, likelihood="gaussian", min_std=0.05, **SMALL)
    z = torch.randn(2, 3, 5)
    p = decoder(z)
    assert p.batch_shape == (2, 3) and p.event_shape == (784,)
    out = decoder.net(z)
    mean, std = out[..., :784], F.softplus(out[..., 784:]) + 0.05
    x = torch.rand(2, 3, 784)
    torch.testing.assert_close(p.log_prob(x), torch.distributions.Normal(mean, std).log_prob(x).sum(-1))


def test_critics_give_one_logit_per_example_and_expose_their_trunk():
    critic = ConvCritic(**SMALL)
    x = _images(6)
    assert critic(x).shape == (6,) and critic.trunk(x).shape == (6, 16)
    torch.testing.assert_close(critic(x), critic.head(critic.trunk(x)).squeeze(-1))
    joint = ConvJointCritic(latent_dim=3, z_hidden_dim=8, **SMALL).eval()
    z = torch.randn(6, 3)
    u = torch.cat([x, z], -1)
    assert joint(u).shape == (6,) and joint.trunk(u).shape == (6, joint.feature_dim)
    assert not torch.allclose(joint(u), joint(torch.cat([x, z + 1.0], -1))), "D(x, z) must depend on z"
    assert joint(torch.cat([_images(2, 6), torch.randn(2, 6, 3)], -1)).shape == (2, 6)


def test_gradients_reach_every_parameter():
    encoder, decoder, critic = ConvEncoder(out_dim=4, **SMALL), ConvDecoder(in_dim=4, **SMALL), ConvCritic(**SMALL)
    x = _images(8)
    loss = critic(decoder(encoder(x).rsample()).mean).sum()
    loss.backward()
    for net in (encoder, decoder, critic):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_parts_are_chosen_by_class_path_and_infogan_shares_the_conv_trunk():
    critic = instantiate_part("x_critic", {"class_path": "infoae_pl.nets.ConvCritic", "init_args": SMALL})
    decoder = instantiate_part("decoder", {"class_path": "infoae_pl.nets.ConvDecoder", "init_args": {"in_dim": 8, **SMALL}})
    model = InfoGAN(noise_dim=4, num_categories=3, num_continuous=1, x_critic=critic, decoder=decoder, hidden_dim=8)
    assert model.encoder.trunk is critic.trunk
    x = _images(5)
    q = model.encode(x)
    assert q.logits.shape == (5, 3) and q.log_prob(model.prior().sample((5,))).shape == (5,)
    assert model.sample_x(model.prior().sample((5,))).shape == (5, 784)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ConvEncoder(in_dim=100), r"in_dim must be 784"),
        (lambda: ConvDecoder(out_dim=2), r"out_dim must be 784"),
        (lambda: ConvCritic(in_dim=2), r"in_dim must be 784"),
        (lambda: ConvDecoder(likelihood="poisson"), r"likelihood='poisson' is not supported; choose one of: bernoulli, gaussian"),
        (lambda: ConvCritic(activation="swish"), r"activation='swish' is not supported"),
        (lambda: ConvEncoder(init="orthogonal"), r"init='orthogonal' is not supported; choose one of: dcgan, default"),
        (lambda: ConvJointCritic(latent_dim=0), r"latent_dim must be an integer >= 1"),
        (lambda: ConvCritic(channels=0), r"channels must be an integer >= 1"),
    ],
)
def test_bad_options_name_the_option(build, message):
    with pytest.raises(ValueError, match=message):
        build()

"""The critics component: one critic per adversarial term, networks as parts, the summed critic loss."""

import pytest
import torch
from torch import nn

from infoae_pl.divergences import AdversarialDivergence
from infoae_pl.models import CycleGAN, LagrangianModule
from infoae_pl.models.critics import Critics
from infoae_pl.models.estimation import draw_samples
from infoae_pl.nets import MLPCritic

TINY = dict(data_dim=3, latent_dim=2, hidden_dim=8, num_hidden_layers=1, likelihood="gaussian")


def _critics(networks):
    return Critics({"JS(q(x)||p(x))": "js", "KL(p(x)||q(x))": "kl", "JS(q(z)||p(z))": "js"}, networks,
                   lambda width: MLPCritic(width, 4, 1), {"x": 3, "z": 2, "x,z": 5}, "non_saturating", 0.0, 2, 1e-3,
                   (0.5, 0.9))


def test_one_critic_per_term_default_networks_by_width_given_ones_copied_for_a_second_term():
    given = MLPCritic(3, 7, 1)
    critics = _critics({"x": given})
    assert list(critics) == ["JS_q_x_p_x", "KL_p_x_q_x", "JS_q_z_p_z"]
    assert critics.network("JS(q(x)||p(x))") is given
    second = critics.network("KL(p(x)||q(x))")
    assert second is not given and all(torch.equal(a, b) for a, b in zip(second.parameters(), given.parameters()))
    assert critics.network("JS(q(z)||p(z))").trunk[0].in_features == 2
    assert critics["KL_p_x_q_x"].generator_loss == "minimax" and critics["JS_q_x_p_x"].generator_loss == "non_saturating"
    assert critics.pairs == {"x", "z"} and critics.steps == 2
    optimizer = critics.optimizer()
    assert optimizer.param_groups[0]["betas"] == (0.5, 0.9) and optimizer.param_groups[0]["lr"] == 1e-3
    assert optimizer.param_groups[0]["fused"]  # one kernel over all parameters, as the model's Adam


def test_the_critic_loss_is_the_sum_of_each_critic_loss_on_its_sides():
    torch.manual_seed(0)
    model = CycleGAN(**TINY)
    x = torch.randn(16, 3)
    torch.manual_seed(1)
    loss = model.critic_loss(x)
    torch.manual_seed(1)
    samples = draw_samples(model, x, q=True, p=True, generated_x=True, prior_first=True)
    expected = sum(
        model.critics[key].critic_loss(*samples.of_divergence(term)) for term, key in model.critic_keys.items()
    )
    torch.testing.assert_close(loss, expected)
    assert isinstance(model.critics["JS_q_x_p_x"], AdversarialDivergence)


class TinyJointCritic(nn.Module):
    """A user's critic of (x, z): one linear layer."""

    def __init__(self, width: int = 5) -> None:
        super().__init__()
        self.linear = nn.Linear(width, 1)

    def forward(self, u):
        return self.linear(u).squeeze(-1)


def test_a_module_given_as_a_pairs_critic_is_the_one_trained():
    critic = TinyJointCritic()
    model = LagrangianModule(preset="ali_bigan", implicit_generator=True, joint_critic=critic, **TINY)
    assert model.critics.network("JS(q(x,z)||p(x,z))") is critic
    assert "joint_critic" not in model.hparams  # its weights are in the checkpoint, not in hparams
    with pytest.raises(ValueError, match=r"joint_critic must be an nn\.Module, a mapping with class_path"):
        LagrangianModule(preset="ali_bigan", implicit_generator=True, joint_critic="linear", **TINY)

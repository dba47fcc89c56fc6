"""One sample-drawing function for the loss and the critics: what it draws, in which order, and which side is which."""

import torch

from infoae_pl.models import LagrangianModule
from infoae_pl.models.estimation import TermEstimator, draw_samples, other_side

TINY = dict(data_dim=3, latent_dim=2, hidden_dim=8, num_hidden_layers=1, likelihood="gaussian")


def _model(**options):
    return LagrangianModule(preset="ali_bigan", implicit_generator=True, **{**TINY, **options})


def test_draws_only_what_is_asked_in_a_fixed_order():
    model, x = _model(), torch.randn(5, 3)
    torch.manual_seed(0)
    s = draw_samples(model, x, q=True, p=True, generated_x=True)
    torch.manual_seed(0)
    q = model.encode(x).base_dist
    z_q = q.loc + q.scale * torch.randn_like(q.loc)
    z_p = torch.randn(5, 2)
    torch.testing.assert_close(s.z_q, z_q, rtol=0, atol=0)
    torch.testing.assert_close(s.z_p, z_p, rtol=0, atol=0)
    torch.testing.assert_close(s.x_p, model.decode(z_p).mean, rtol=0, atol=0)  # implicit: G(z), no draw
    only_p = draw_samples(model, x, q=False, p=True, generated_x=False)
    assert only_p.z_q is None and only_p.x_p is None and only_p.z_p.shape == (5, 2)


def test_prior_first_swaps_the_two_latent_draws():
    model, x = _model(), torch.randn(5, 3)
    torch.manual_seed(3)
    a = draw_samples(model, x, q=True, p=True, generated_x=False)
    torch.manual_seed(3)
    b = draw_samples(model, x, q=True, p=True, generated_x=False, prior_first=True)
    q = model.encode(x).base_dist
    # The prior's standard normals of one order are q's noise in the other.
    torch.testing.assert_close((b.z_q - q.loc) / q.scale, a.z_p, rtol=1e-5, atol=1e-6)


def test_divergence_sides_follow_the_term_and_the_joint_concatenates_x_and_z():
    model, x = _model(), torch.randn(4, 3)
    s = draw_samples(model, x, q=True, p=True, generated_x=True)
    first, second = s.of_divergence("JS(q(x,z)||p(x,z))")
    torch.testing.assert_close(first, torch.cat([x, s.z_q], -1))
    torch.testing.assert_close(second, torch.cat([s.x_p, s.z_p], -1))
    first, second = s.of_divergence("KL(p(z)||q(z))")
    assert first is s.z_p and second is s.z_q
    assert other_side("p") == "q" and other_side("q") == "p"


def test_needs_follow_the_terms():
    estimator = TermEstimator({"x": "mmd", "z": "mmd", "x,z": "js"}, kernel=None, critics=None)
    assert estimator.needs(["E_q[log p(x|z)]"]) == {"q": True, "p": False, "generated_x": False}
    assert estimator.needs(["E_p[log q(z|x)]"]) == {"q": False, "p": True, "generated_x": True}
    assert estimator.needs(["MMD(q(z)||p(z))"]) == {"q": True, "p": True, "generated_x": False}
    assert estimator.needs(["JS(q(x)||p(x))"]) == {"q": False, "p": True, "generated_x": True}

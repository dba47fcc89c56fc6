"""RandomAffine against exact pixel operations (quarter turns, whole-pixel shifts) and its ranges."""

import math

import pytest
import torch

from infoae_pl.nets import RandomAffine


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(0))


def test_the_identity_transform_returns_the_images():
    x = _images()
    out = RandomAffine.transform(x, torch.zeros(3), torch.ones(3), torch.zeros(3, 2))
    torch.testing.assert_close(out, x)


def test_a_quarter_turn_is_rot90_counter_clockwise():
    x = _images()
    out = RandomAffine.transform(x, torch.full((3,), math.pi / 2), torch.ones(3), torch.zeros(3, 2))
    expected = torch.rot90(x.reshape(3, 28, 28), 1, dims=(-2, -1)).reshape(3, 784)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_a_whole_pixel_shift_moves_the_image_right_and_down_with_zeros_coming_in():
    x = _images(1)
    out = RandomAffine.transform(x, torch.zeros(1), torch.ones(1), torch.tensor([[2.0, 1.0]])).reshape(28, 28)
    image = x.reshape(28, 28)
    torch.testing.assert_close(out[1:, 2:], image[:-1, :-2], atol=1e-5, rtol=0)
    assert out[:1].abs().max() < 1e-5 and out[:, :2].abs().max() < 1e-5


def test_a_zoom_enlarges_about_the_centre():
    x = torch.zeros(1, 28, 28)
    x[0, 13:15, 13:15] = 1.0  # a 2x2 square at the centre
    out = RandomAffine.transform(x.reshape(1, 784), torch.zeros(1), torch.full((1,), 2.0), torch.zeros(1, 2))
    assert out.sum().item() == pytest.approx(4 * 4, rel=0.05)  # area x zoom^2


def test_random_draws_stay_within_the_shift_and_keep_the_batch_shape():
    x = torch.zeros(2, 5, 28, 28)
    x[..., 14, 14] = 1.0
    torch.manual_seed(0)
    out = RandomAffine(rotation=0.0, scale=0.0, shift=3.0)(x.reshape(2, 5, 784))
    assert out.shape == (2, 5, 784)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out.reshape(10, 28, 28)
    centre_row = (mass * rows).sum((-2, -1)) / mass.sum((-2, -1))
    centre_col = (mass * cols).sum((-2, -1)) / mass.sum((-2, -1))
    assert ((centre_row - 14).abs() <= 3 + 1e-4).all() and ((centre_col - 14).abs() <= 3 + 1e-4).all()
    assert len({round(v, 3) for v in centre_col.tolist()}) > 1  # drawn per image


@pytest.mark.parametrize(("option", "value", "message"), [
    ("rotation", -1.0, "rotation"), ("rotation", 200.0, "at most 180"), ("scale", 1.0, "scale must be < 1"),
    ("shift", 14.0, "shift is in pixels"), ("shift", float("nan"), "shift"),
])
def test_bad_ranges_are_refused_by_name(option, value, message):
    with pytest.raises(ValueError, match=message):
        RandomAffine(**{option: value})

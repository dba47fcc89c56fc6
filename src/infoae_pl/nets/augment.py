"""Random affine transforms of flat 28×28 images: the nuisance InfoGAN's categorical code must survive.

InfoGAN with ``code_augmentation`` also asks Q to recover the categorical code c from T(G(z)), T drawn
here (a rotation, a zoom and a shift per image). E_p[log q(c|T(x))] + H(c) bounds I(c; T(x)) ≤ I(c; x)
from below; it rewards G only for what a small rotation, zoom or shift leaves readable of the code: the
digit, not its slant or width (the continuous codes' job), as in Ojha et al.'s Elastic-InfoGAN (2020).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infoae_pl.nets.conv import IMAGE_SHAPE
from infoae_pl.validation import check_finite_number


class RandomAffine(nn.Module):
    """x → x rotated by U(−``rotation``, ``rotation``) degrees, zoomed by U(1 − ``scale``, 1 + ``scale``)
    and shifted by U(−``shift``, ``shift``) pixels along each axis, independently per image; bilinear,
    zeros outside. Takes and returns flat ``[..., 784]`` images like the conv parts."""

    def __init__(self, rotation: float = 15.0, scale: float = 0.1, shift: float = 2.0) -> None:
        super().__init__()
        check_finite_number("rotation", rotation, minimum=0.0)
        check_finite_number("scale", scale, minimum=0.0)
        check_finite_number("shift", shift, minimum=0.0)
        if rotation > 180:
            raise ValueError(f"rotation is in degrees, at most 180, got {rotation!r}")
        if scale >= 1:
            raise ValueError(f"scale must be < 1 (the zoom is drawn from U(1 - scale, 1 + scale)), got {scale!r}")
        if shift >= IMAGE_SHAPE[-1] / 2:
            raise ValueError(f"shift is in pixels, below {IMAGE_SHAPE[-1] // 2}, got {shift!r}")
        self.rotation, self.scale, self.shift = rotation, scale, shift

    def forward(self, x: Tensor) -> Tensor:
        n = math.prod(x.shape[:-1])

        def uniform(bound: float, *shape: int) -> Tensor:
            return (torch.rand(n, *shape, device=x.device) * 2 - 1) * bound

        angle, zoom = uniform(math.radians(self.rotation)), 1 + uniform(self.scale)
        return self.transform(x, angle, zoom, -uniform(self.shift, 2))  # symmetric: the sign is immaterial

    @staticmethod
    def transform(x: Tensor, angle: Tensor, zoom: Tensor, shift: Tensor) -> Tensor:
        """x rotated by ``angle`` (radians, counter-clockwise as displayed), zoomed by ``zoom`` and shifted
        by ``shift`` (pixels, (right, down)), one value (pair) per image of the flattened batch."""
        images = x.reshape(-1, *IMAGE_SHAPE).float()  # sampling positions in float32, also under bf16 autocast
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # affine_grid maps each output pixel to where it samples the input, in [-1, 1] units of the side
        offset = -2 * shift / IMAGE_SHAPE[-1]
        theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], -1), torch.stack([sin, cos, offset[:, 1]], -1)], 1)
        grid = F.affine_grid(theta.float(), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros").reshape(x.shape).to(x.dtype)

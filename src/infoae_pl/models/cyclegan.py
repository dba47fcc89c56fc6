"""CycleGAN/DiscoGAN between x and z (section 2.5): two cycle reconstructions and two marginal critics."""

from __future__ import annotations

from typing import Any, ClassVar

from infoae_pl.models.lagrangian import LagrangianModule


class CycleGAN(LagrangianModule):
    """Both directions of a CycleGAN between data and latents, from the ``cyclegan`` preset.

    The Lagrangian −I_q − I_p + KL(q(x|z)||p(x|z)) + KL(p(z|x)||q(z|x)) + JS(q(x)||p(x)) + JS(q(z)||p(z))
    compiles to −E_q[log p(x|z)] (the cycle x → z → x) − E_p[log q(z|x)] (the cycle z → x → z) plus a
    critic on x and one on z.  The generator is implicit (G(z) = mean of p(x|z)); ``lagrangian``
    adds terms.  Every other argument is :class:`LagrangianModule`'s.
    """

    FIXED_HPARAMS: ClassVar[tuple[str, ...]] = ("preset", "preset_params")

    def __init__(
        self, z_divergence: str = "js", x_divergence: str = "js", implicit_generator: bool = True, **kwargs: Any
    ) -> None:
        self.refuse_fixed(kwargs)
        super().__init__(
            preset="cyclegan",
            preset_params=None,
            z_divergence=z_divergence,
            x_divergence=x_divergence,
            implicit_generator=implicit_generator,
            **kwargs,
        )

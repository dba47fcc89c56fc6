"""CycleGAN/DiscoGAN between x and z (section 2.5): two cycle reconstructions and two marginal critics."""

from __future__ import annotations

from typing import Any

from infoae_pl.models.lagrangian import LagrangianModule, drop_fixed_hparams


class CycleGAN(LagrangianModule):
    """Both directions of a CycleGAN between data and latents, from the ``cyclegan`` preset.

    The Lagrangian −I_q − I_p + KL(q(x|z)||p(x|z)) + KL(p(z|x)||q(z|x)) + JS(q(x)||p(x)) + JS(q(z)||p(z))
    compiles to −E_q[log p(x|z)] (the cycle x → z → x) − E_p[log q(z|x)] (the cycle z → x → z) plus a
    critic on x and one on z.  The generator is implicit (G(z) = mean of p(x|z)); ``lagrangian``
    adds terms.  Every other argument is :class:`LagrangianModule`'s.
    """

    def __init__(
        self, z_divergence: str = "js", x_divergence: str = "js", implicit_generator: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(
            preset="cyclegan",
            z_divergence=z_divergence,
            x_divergence=x_divergence,
            implicit_generator=implicit_generator,
            **kwargs,
        )
        drop_fixed_hparams(self, ("preset", "preset_params"))

"""InfoBiGAN (Theorem 3) with ALI/BiGAN and ALICE as presets: an encoder, a generator and a joint critic."""

from __future__ import annotations

from typing import Any

from infoae_pl.models.lagrangian import LagrangianModule

#: The presets this module trains: they compile to a joint divergence plus what Theorem 3 allows.
INFOBIGAN_PRESETS = ("ali_bigan", "alice", "infobigan")


class InfoBiGAN(LagrangianModule):
    """Encoder q(z|x), implicit generator G(z) and a critic D(x, z) of the joints, trained adversarially.

    ``preset`` is ``"ali_bigan"`` (JS(q(x,z)||p(x,z)) only), ``"alice"`` (adds the reconstruction
    −E_q[log p(x|z)], the conditional-entropy term) or ``"infobigan"`` (Theorem 3 with
    ``preset_params`` alpha, lambda1, lambda2: α·I_p becomes α·E_p[log q(z|x)] plus
    (α+1)·KL(p(x,z)||q(x,z)), as the theorem writes it); ``lagrangian`` adds terms.  The generator is
    implicit by default (G(z) = mean of p(x|z)).  Every other argument is :class:`LagrangianModule`'s.
    """

    def __init__(
        self,
        preset: str = "ali_bigan",
        preset_params: dict[str, float] | None = None,
        implicit_generator: bool = True,
        **kwargs: Any,
    ) -> None:
        if preset not in INFOBIGAN_PRESETS:
            raise ValueError(f"InfoBiGAN preset={preset!r} is not supported; choose one of: {', '.join(INFOBIGAN_PRESETS)}")
        super().__init__(preset=preset, preset_params=preset_params, implicit_generator=implicit_generator, **kwargs)

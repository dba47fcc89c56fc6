"""bf16 mixed precision only where the hardware computes in bf16; float32 elsewhere, said in one line.

``trainer.precision: bf16-mixed`` made the conv InfoGAN's training step 1.65× faster on a 2-core CPU with
AMX (107 against 178 ms, measured), but 32× slower where oneDNN emulates bf16 (the same CPU limited to
AVX2: 6.5 s against 0.2 s). A config may ask for bf16 and still run everywhere: on a CPU without
AVX512-BF16 or AMX, or a CUDA GPU without bf16, the run trains in ``32-true`` instead.
"""

from __future__ import annotations

from typing import Any

import torch

from infoae_pl._compat import cpu_has_native_bf16

#: Lightning's precision values that compute in bf16.
BF16_PRECISIONS = frozenset({"bf16-mixed", "bf16-true", "bf16"})
#: Accelerator names that mean a CUDA GPU.
_CUDA_ACCELERATORS = frozenset({"gpu", "cuda"})


def device_without_bf16(accelerator: Any) -> str | None:
    """The device a run on ``accelerator`` ("auto", "cpu", "gpu", "cuda", ...) would use, described, if it
    lacks native bf16; None if it has it, or if it is another kind (MPS, TPU: left to Lightning)."""
    name = accelerator if isinstance(accelerator, str) else type(accelerator).__name__.lower().removesuffix("accelerator")
    if name in _CUDA_ACCELERATORS or (name == "auto" and torch.cuda.is_available()):
        return None if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "a CUDA GPU without bf16"
    if name == "cpu" or (name == "auto" and not torch.backends.mps.is_available()):
        return None if cpu_has_native_bf16() else "a CPU without AVX512-BF16 or AMX"
    return None


def float32_fallback(precision: Any, accelerator: Any) -> str | None:
    """Why a run asked to train in ``precision`` on ``accelerator`` should train in ``32-true`` instead, or None."""
    if str(precision) not in BF16_PRECISIONS:
        return None
    device = device_without_bf16(accelerator)
    if device is None:
        return None
    return (f"trainer.precision {precision}: this machine trains on {device}, where bf16 is emulated (32x slower "
            "than float32, measured on the conv InfoGAN); training in 32-true instead")


__all__ = ["BF16_PRECISIONS", "device_without_bf16", "float32_fallback"]

"""bf16 precision where the hardware has it, float32 (said once) where it would be emulated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from infoae_pl.cli import main
from infoae_pl.precision import device_without_bf16, float32_fallback


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Set whether this CPU reports bf16 instructions (AVX512-BF16, AMX), with no GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    def set_native(native: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    return set_native


@pytest.mark.parametrize("accelerator", ["auto", "cpu"])
def test_bf16_on_a_cpu_without_bf16_falls_back_to_float32_and_says_why(cpu_bf16, accelerator):
    cpu_bf16(False)
    assert device_without_bf16(accelerator) == "a CPU without AVX512-BF16 or AMX"
    for precision in ("bf16-mixed", "bf16-true", "bf16"):
        message = float32_fallback(precision, accelerator)
        assert f"trainer.precision {precision}" in message and "32-true" in message
    assert float32_fallback("32-true", accelerator) is None and float32_fallback("16-mixed", accelerator) is None


def test_bf16_stays_on_a_cpu_with_bf16_and_on_devices_left_to_lightning(cpu_bf16, monkeypatch):
    cpu_bf16(True)
    assert float32_fallback("bf16-mixed", "cpu") is None and float32_fallback("bf16-mixed", "auto") is None
    cpu_bf16(False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert float32_fallback("bf16-mixed", "auto") is None  # Apple's GPU: Lightning decides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert device_without_bf16("gpu") == "a CUDA GPU without bf16" and float32_fallback("bf16-mixed", "auto")


@pytest.mark.parametrize("native", [False, True])
def test_infoae_fit_trains_in_the_precision_the_hardware_runs(cpu_bf16, native, recwarn, tiny_mog_fit):
    cpu_bf16(native)
    main([*tiny_mog_fit, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
          "--trainer.precision", "bf16-mixed"])
    saved = yaml.safe_load(Path("runs/infoae/version_0/config.yaml").read_text())
    assert saved["trainer"]["precision"] == ("bf16-mixed" if native else "32-true")  # what ran is what is saved
    said = [str(w.message) for w in recwarn if "training in 32-true instead" in str(w.message)]
    assert len(said) == (0 if native else 1)

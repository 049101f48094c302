"""Model loading: the precision a card gets."""

from __future__ import annotations

import pytest
import torch

from vlmgrpo import models, presets, train


def fake_card(monkeypatch, cuda: bool, bf16_units: bool) -> None:
    """Pretend CUDA is (not) there, on a card with (without) bf16 units.

    Like torch on a T4, the card "supports" bf16 when emulation counts (the default).
    """
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(
        torch.cuda,
        "is_bf16_supported",
        lambda including_emulation=True: cuda and (bf16_units or including_emulation),
    )


@pytest.mark.parametrize(
    ("cuda", "bf16_units", "expected"),
    [
        (True, True, torch.bfloat16),  # A100, H100, RTX 30xx/40xx, A4000...
        (True, False, torch.float16),  # T4, V100: bf16 only emulated
        (False, False, torch.float32),  # CPU or Apple MPS
    ],
    ids=["ampere+", "t4", "no-cuda"],
)
def test_precision_fits_the_card(monkeypatch, cuda, bf16_units, expected):
    fake_card(monkeypatch, cuda, bf16_units)
    for name in presets.GPU_PRESETS:
        assert models.compute_dtype(presets.get_preset(name)) == expected, name
    # The tiny model trains in float32 on any device.
    assert models.compute_dtype(presets.get_preset("tiny")) == torch.float32
    assert models.dtype_name(expected) == str(expected).removeprefix("torch.")


@pytest.mark.parametrize(
    ("dtype", "bf16", "fp16"),
    [(torch.bfloat16, True, False), (torch.float16, False, True), (torch.float32, False, False)],
)
def test_grpo_config_precision_flags_follow_the_dtype(monkeypatch, tmp_path, dtype, bf16, fp16):
    monkeypatch.setattr(models, "compute_dtype", lambda preset: dtype)
    args = train.grpo_config(presets.get_preset("qwen2.5-vl-3b"), tmp_path)
    assert (args.bf16, args.fp16) == (bf16, fp16)

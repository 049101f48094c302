"""Loading the model a preset trains: from a hub id or a folder, in the run's precision."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlmgrpo import tiny
from vlmgrpo.presets import GPU_PRESETS, Preset
from vlmgrpo.utils import UsageError


def compute_dtype(preset: Preset) -> torch.dtype:
    """The run's precision: bf16 on a CUDA GPU that has it, fp16 on one that does not, else fp32.

    Only presets with `half_precision` leave float32 (the tiny model trains in it anywhere).
    A T4 (compute capability 7.5) has no bf16 units: torch emulates bf16 there, slowly, and
    reports it supported unless emulation is excluded. CPUs (and Apple's MPS) compute half
    precision slowly or partly; a rehearsal on the CPU runs in float32, which only makes its
    numbers more exact. The same dtype is the 4-bit layers' compute dtype, and decides
    GRPOConfig's bf16/fp16 flags.
    """
    if not (preset.half_precision and torch.cuda.is_available()):
        return torch.float32
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.bfloat16
    return torch.float16


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` as run.json and eval.json record it: "bfloat16"."""
    return str(dtype).removeprefix("torch.")


def warn_if_no_gpu(preset: Preset) -> None:
    """One stderr line when a GPU preset starts without CUDA: it runs, slowly."""
    if preset.name in GPU_PRESETS and not torch.cuda.is_available():
        print(
            f"vlmgrpo: no CUDA GPU found: the {preset.name} preset runs on the CPU in float32, "
            f"which takes hours per step with the 3B model (fine for a rehearsal with a small "
            f"--model)",
            file=sys.stderr,
        )


def vision_lora_targets(model, lora: LoraConfig) -> list[str]:
    """The vision-tower modules that `lora` would adapt (vLLM serves none)."""
    return [
        name
        for name, _ in model.named_modules()
        if "visual" in name.split(".") and check_target_module_exists(lora, name)
    ]


def load_model(source: str | None, preset: Preset, trust_remote_code: bool = False):
    """Model and processor from a hub id or folder (`None`: the tiny model, built if needed).

    `trust_remote_code` runs Python shipped with a hub model; off unless the user asks.
    """
    if source is None:
        source = str(tiny.make_tiny())
    elif not Path(source).exists() and (
        source.startswith((".", "/", "~")) or source.count("/") != 1
    ):
        raise UsageError(
            f"model {source} is neither an existing folder nor a hub id like owner/name"
        )
    dtype = compute_dtype(preset)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code
        )
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise UsageError(
            f"cannot load model {source} ({str(err).splitlines()[0][:160]}); pass a local "
            "folder saved with save_pretrained, or check the hub id and your network "
            "(`hf auth login` for gated models)"
        ) from err
    processor.tokenizer.padding_side = "left"
    return model, processor

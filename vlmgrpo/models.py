"""Loading the model a preset trains: its family, its precision, and 4 bits where asked.

* The family (`vlmgrpo.presets.FAMILIES`) sizes image tokens: a run takes the family of the
  model it loads, read from its config, so `--model` may name any Qwen2.5-VL or Qwen3-VL.
* The precision (`compute_dtype`) follows the card: bf16, fp16 on a T4, float32 on a CPU.
* ``quantization="nf4"`` loads the linear layers in 4 bits with bitsandbytes (QLoRA), on
  CUDA or, for a rehearsal, on the CPU; LoRA then trains beside them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    BitsAndBytesConfig,
)

from vlmgrpo import tiny
from vlmgrpo.presets import BITSANDBYTES, DEFAULT_FAMILY, FAMILIES, GPU_PRESETS, Preset
from vlmgrpo.utils import UsageError, get_device


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
            f"which takes hours per step with its model of billions of parameters (fine for a "
            f"rehearsal with a small --model)",
            file=sys.stderr,
        )


def vision_lora_targets(model, lora: LoraConfig) -> list[str]:
    """The vision-tower modules that `lora` would adapt (the presets adapt none)."""
    return [
        name
        for name, _ in model.named_modules()
        if "visual" in name.split(".") and check_target_module_exists(lora, name)
    ]


def model_family(source: str | None, default: str, trust_remote_code: bool = False) -> str:
    """The family (a FAMILIES key) of the model at `source`, read from its config's model_type.

    `default` for a model of no known family; `source` None is the tiny model, a Qwen2.5-VL.
    Reads only config.json (downloaded for a hub id), so it can run before the data loads.
    """
    if source is None:
        return DEFAULT_FAMILY
    check_model_source(source)
    with _loading(source):
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    found = [name for name, f in FAMILIES.items() if config.model_type in f.model_types]
    return found[0] if found else default


def check_quantization(preset: Preset) -> None:
    """Raise a one-line UsageError when a 4-bit preset's library, bitsandbytes, is missing.

    `settings.resolve` calls it, before training starts and before a 4-bit run is loaded for
    evaluation; the quantization's name is checked with the other settings
    (`presets.check_preset`).
    """
    if preset.quantization is None:
        return
    try:
        import bitsandbytes  # noqa: F401  (only whether it imports)
    except ImportError as err:
        raise UsageError(
            f"the {preset.name} preset loads the model in 4 bits, which needs bitsandbytes; "
            f"install it with `pip install {BITSANDBYTES}`"
        ) from err


def quantization_config(preset: Preset) -> BitsAndBytesConfig | None:
    """bitsandbytes' settings for the preset's quantization (None: the model as it is).

    QLoRA's: 4-bit NormalFloat, the quantization constants quantized again (double
    quantization, 0.127 instead of 0.5 bits per parameter), computing in the run's dtype.
    """
    if preset.quantization is None:
        return None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=preset.quantization,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype(preset),
    )


def load_model(
    source: str | None,
    preset: Preset,
    trust_remote_code: bool = False,
    device: torch.device | str | None = None,
):
    """Model and processor from a hub id or folder (`None`: the task's tiny model, built).

    A model is loaded in `compute_dtype` on the CPU, for the caller to move. A 4-bit one is
    quantized as its weights are placed, so it goes straight to `device` (default: the best
    one, `get_device`); the weights kept out of 4 bits stay in float32, as QLoRA keeps them
    (peft's `prepare_model_for_kbit_training` would cast them so too), and GRPOTrainer casts
    the LoRA weights to bf16 itself. `trust_remote_code` runs Python shipped with a hub
    model; off unless the user asks. `preset` is checked already (`settings.resolve`).
    """
    if source is None:  # the tiny model of the preset's synthetic task
        source = str(tiny.make_tiny(tiny.SPECS[preset.task]))
    else:
        check_model_source(source)
    options = {"dtype": compute_dtype(preset)}
    if (quantization := quantization_config(preset)) is not None:
        options = {
            "dtype": torch.float32,
            "quantization_config": quantization,
            "device_map": {"": str(device or get_device())},
        }
    with _loading(source):
        model = AutoModelForImageTextToText.from_pretrained(
            source, trust_remote_code=trust_remote_code, **options
        )
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    if quantization is not None and model.device.type == "cpu":
        _keep_4bit_trainable_on_cpu(model)
    processor.tokenizer.padding_side = "left"
    return model, processor


def load_trained(
    source: str | None,
    preset: Preset,
    adapter: str | Path | None,
    trust_remote_code: bool = False,
    device: torch.device | str | None = None,
):
    """`load_model` with a trained LoRA `adapter` folder on it (None: the base model alone).

    On `device` (default: the best one, CUDA, then MPS, then the CPU: generating on the CPU of
    a GPU machine would take hours), in eval mode; a 4-bit base takes the adapter as well.
    """
    device = device or get_device()
    model, processor = load_model(source, preset, trust_remote_code, device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.to(device).eval(), processor


def _keep_4bit_trainable_on_cpu(model) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference, which breaks training.

    bitsandbytes 0.50.2, on a CPU with AVX512-BF16, repacks a 4-bit layer's weights for a
    faster kernel at its first forward pass in eval mode, and keeps them so; training passes
    after it run that kernel, which has no backward, and the LoRA weights before it get no
    gradient (measured on the tiny Qwen3-VL: None for layer 0's adapters after one pass in
    eval mode). Evaluation runs before training, and TRL generates in eval mode.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def check_model_source(source: str) -> None:
    """Raise UsageError unless `source` is a model's folder or looks like a hub id."""
    if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
        # transformers would say "Unrecognized model" with a traceback.
        raise UsageError(
            f"model folder {source} holds no config.json; pass a folder saved with "
            "save_pretrained, or a hub id like owner/name"
        )
    if not Path(source).exists() and (
        source.startswith((".", "/", "~")) or source.count("/") != 1
    ):
        raise UsageError(
            f"model {source} is neither an existing folder nor a hub id like owner/name"
        )


@contextmanager
def _loading(source: str) -> Iterator[None]:
    """Turn a failure to find or download `source` into a one-line UsageError."""
    try:
        yield
    except OSError as err:
        raise UsageError(
            f"cannot load model {source} ({str(err).splitlines()[0][:160]}); pass a local "
            "folder saved with save_pretrained, or check the hub id and your network "
            "(`hf auth login` for gated models)"
        ) from err

"""Model loading: the precision a card gets, the model's family, 4 bits with bitsandbytes."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.conftest import needs_bitsandbytes
from tests.fixtures import make_article_dataset
from vlmgrpo import cli as cli_module
from vlmgrpo import data, models, presets, train
from vlmgrpo.cli import build_parser, main
from vlmgrpo.utils import UsageError


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


def test_the_family_comes_from_the_model(tiny_model_dir, tiny_qwen3vl_dir, tmp_path):
    assert models.model_family(tiny_qwen3vl_dir, "qwen2.5-vl") == "qwen3-vl"
    assert models.model_family(tiny_model_dir, "qwen3-vl") == "qwen2.5-vl"
    assert models.model_family(None, "qwen3-vl") == "qwen2.5-vl"  # the tiny model
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "gpt2"}')
    assert models.model_family(str(other), "qwen3-vl") == "qwen3-vl"  # unknown: the preset's
    with pytest.raises(UsageError, match="neither an existing folder nor a hub id"):
        models.model_family("no/such/place/here", "qwen3-vl")
    with pytest.raises(UsageError, match="holds no config.json"):
        models.model_family(str(tmp_path), "qwen3-vl")  # a folder, but not a model's


@pytest.mark.parametrize(("family", "side"), [("qwen2.5-vl", 28), ("qwen3-vl", 32)])
def test_image_caps_follow_the_family(family, side):
    preset = replace(presets.get_preset("qwen3-vl-2b"), family=family, max_image_tokens=64)
    assert presets.FAMILIES[family].token_side == side
    assert preset.max_pixels == 64 * side * side
    # A thin image keeps its short side at one token of the family, never less.
    capped = data.cap_image(Image.new("RGB", (4000, 40)), preset.max_pixels, side)
    assert capped.height == side and capped.width * capped.height <= preset.max_pixels
    assert preset.vllm_max_model_length == 1792  # 64 + 2 + 512 + 1024 = 1602, rounded up


@needs_bitsandbytes
def test_quantization_is_checked(monkeypatch):
    nf4 = presets.get_preset("qwen3-vl-4b-qlora")
    presets.check_preset(nf4, num_processes=1)
    models.check_quantization(nf4)
    with pytest.raises(UsageError, match=r"unknown quantization 'int3'; use one of: nf4"):
        presets.check_preset(replace(nf4, quantization="int3"), num_processes=1)
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(UsageError) as caught:
        models.check_quantization(nf4)
    message = str(caught.value)
    assert "\n" not in message and f"`pip install {presets.BITSANDBYTES}`" in message
    models.check_quantization(presets.get_preset("qwen3-vl-2b"))  # no 4 bits


def test_a_4bit_preset_without_bitsandbytes_exits_2_naming_the_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    assert main(["train", "--preset", "qwen3-vl-4b-qlora", "--output-dir", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install bitsandbytes==" in err


@pytest.fixture(scope="module")
def qlora_run(tiny_qwen3vl_dir, tmp_path_factory) -> SimpleNamespace:
    """One GRPO step of the 4-bit preset on the tiny Qwen3-VL, and the trainer it used."""
    folder = tmp_path_factory.mktemp("qlora")
    dataset = folder / "data.parquet"
    make_article_dataset(100).to_parquet(str(dataset))
    build_trainer, made = train.build_trainer, []

    def keep(*args, **kwargs):
        made.append(build_trainer(*args, **kwargs))
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "build_trainer", keep)
        result = train.run(
            "qwen3-vl-4b-qlora",
            model=tiny_qwen3vl_dir,
            dataset=str(dataset),
            output_dir=folder / "run",
            progress=False,
            max_steps=1,
        )
    (trainer,) = made
    return SimpleNamespace(out=folder / "run", result=result, trainer=trainer)


@needs_bitsandbytes
def test_the_4bit_run_trains_lora_beside_4bit_layers(qlora_run):
    import bitsandbytes as bnb

    model = qlora_run.trainer.model
    four_bit = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    # Every linear layer of the language model and the vision tower; the output layer is not.
    assert any(".language_model." in n for n in four_bit)
    assert any(".visual." in n for n in four_bit) and not any("lm_head" in n for n in four_bit)
    assert qlora_run.result["config"]["quantization"] == "nf4"
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    # After the run's passes in eval mode (evaluation, generation), a training pass still
    # reaches every adapter: on a CPU with AVX512-BF16, bitsandbytes' inference repacking
    # left the first layers' adapters without a gradient (models.load_model stops it).
    model.train()
    model.zero_grad()
    ids = torch.arange(2, 26).reshape(2, 12)
    model(input_ids=ids, labels=ids).loss.backward()
    for name, param in model.named_parameters():
        if "lora_" in name:
            assert param.grad is not None, name
            if "lora_B" in name:  # B starts at zero, so A's gradient does too
                assert param.grad.abs().sum() > 0, name
    model.zero_grad()


@needs_bitsandbytes
def test_the_adapter_reloads_onto_a_4bit_base(qlora_run, tmp_path, capsys):
    import bitsandbytes as bnb

    args = build_parser().parse_args(["evaluate", "--adapter", str(qlora_run.out)])
    setting = cli_module._setting(args)
    assert setting[0].quantization == "nf4" and setting[0].family == "qwen3-vl"
    model, _ = cli_module._load_for_inference(args, setting)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    saved = load_file(qlora_run.out / "adapter" / "adapter_model.safetensors")
    loaded = {n.replace(".default", ""): p for n, p in model.named_parameters() if "lora_" in n}
    assert sorted(saved) == sorted(loaded) and saved
    for name, value in saved.items():  # the trained adapter, not a fresh one
        assert torch.equal(loaded[name].float(), value.float()), name
    # evaluate and generate run on it, as a renter types them.
    assert main(["evaluate", "--adapter", str(qlora_run.out)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == qlora_run.result["n_eval"]
    image = tmp_path / "shape.png"
    Image.new("RGB", (64, 48), "teal").save(image)
    argv = ["generate", "--adapter", str(qlora_run.out), "--image", str(image), "--problem", "?"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > 0

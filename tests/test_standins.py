"""`vlmgrpo.standins` (the real sizes) and scaling out: the 24 GB preset, the batch rule, vLLM."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists
from transformers import Qwen2_5_VLForConditionalGeneration
from trl.import_utils import is_vllm_available

from tests.test_cli import run_cli
from tests.test_train import FAST
from vlmgrpo import data, models, presets, standins, train
from vlmgrpo.utils import UsageError


def test_24gb_preset_fits_the_recipe_into_a_smaller_card():
    preset = presets.get_preset("qwen2.5-vl-3b-24gb")
    article = presets.get_preset("qwen2.5-vl-3b")
    assert (preset.model, preset.dataset) == (article.model, article.dataset)
    assert preset.max_pixels == 128 * 28 * 28 < article.max_pixels
    lora = train.lora_config(preset)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 32, 0.1)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    args = train.grpo_config(preset, "unused")
    assert args.gradient_checkpointing is True
    assert args.bf16 == (models.compute_dtype(preset) == torch.bfloat16)
    assert args.max_completion_length == 512 < article.max_completion_length
    assert (args.num_generations, args.per_device_train_batch_size) == (4, 4)
    assert args.learning_rate == 1e-5
    assert args.use_vllm is False
    assert preset.eval_max_new_tokens == 512
    presets.check_preset(preset, num_processes=1)


def test_the_generation_batch_counts_every_process():
    three = replace(presets.PRESETS["tiny"], batch_size=3, num_generations=2)
    # 3 completions per process cannot hold groups of 2; 3 x 2 processes = 6 can.
    with pytest.raises(UsageError, match=r"batch of 3 completions .* x 1 process\(es\)"):
        presets.check_preset(three)  # read from accelerate: one process under pytest
    presets.check_preset(three, num_processes=2)
    with pytest.raises(UsageError, match="generation batch of 9 completions"):
        presets.check_preset(three, num_processes=3)


def test_use_vllm_reaches_trl_in_colocate_mode():
    preset = replace(presets.get_preset("qwen2.5-vl-3b"), use_vllm=True)
    args = train.grpo_config(preset, "unused")
    assert args.use_vllm is True and args.vllm_mode == "colocate"
    server = train.grpo_config(replace(preset, vllm_mode="server"), "unused")
    assert server.vllm_mode == "server"
    with pytest.raises(UsageError, match="--vllm-mode must be colocate or server"):
        presets.check_preset(replace(preset, vllm_mode="remote"), num_processes=1)


@pytest.mark.skipif(is_vllm_available(), reason="vLLM is installed here")
def test_use_vllm_without_vllm_exits_2_naming_the_extra(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["train", "--use-vllm", "--output-dir", str(out)], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "--use-vllm needs vLLM" in err and "pip install -e .[vllm]" in err
    assert not out.exists()


@pytest.fixture(scope="module")
def meta_3b():
    """Qwen2.5-VL-3B's modules on the meta device: its shapes, no memory, no weights."""
    config = standins.qwen25vl_3b_config(standins.qwen_id_tokenizer())
    with torch.device("meta"):
        return Qwen2_5_VLForConditionalGeneration(config)


def test_3b_config_has_the_published_values(meta_3b):
    text, vision = meta_3b.config.text_config, meta_3b.config.vision_config
    assert (text.vocab_size, text.hidden_size, text.intermediate_size) == (151936, 2048, 11008)
    assert (text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        36,
        16,
        2,
    )
    assert text.rope_parameters["rope_theta"] == 1e6
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert (vision.depth, vision.hidden_size, vision.num_heads) == (32, 1280, 16)
    assert (vision.intermediate_size, vision.out_hidden_size) == (3420, 2048)
    assert list(vision.fullatt_block_indexes) == [7, 15, 23, 31] and vision.window_size == 112
    assert meta_3b.config.tie_word_embeddings is True
    ids = (meta_3b.config.vision_start_token_id, meta_3b.config.image_token_id)
    assert ids == (151652, 151655)  # Qwen's own ids, inside the real embedding
    # The model card's 3.75 B parameters (tied embeddings counted once).
    assert 3.70e9 < sum(p.numel() for p in meta_3b.parameters()) < 3.80e9


def test_tokenizer_keeps_qwens_special_token_ids():
    tokenizer = standins.qwen_id_tokenizer()
    ids = [tokenizer.convert_tokens_to_ids(t) for t in standins.QWEN_SPECIAL_TOKENS]
    assert ids == list(range(151643, 151657))
    encoded = tokenizer("<|vision_start|><|image_pad|><|vision_end|>What colour?<|im_end|>")
    assert encoded["input_ids"][:3] == [151652, 151655, 151653]
    assert encoded["input_ids"][-1] == 151645
    assert max(encoded["input_ids"][3:-1]) < 151643  # text uses the learned ids only


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_presets_put_lora_on_the_language_model_only(name, meta_3b):
    """The presets adapt what the model says, not how it sees: no LoRA in the vision tower
    (whose attention is a fused qkv, not q_proj/v_proj)."""
    lora = train.lora_config(presets.PRESETS[name])
    assert models.vision_lora_targets(meta_3b, lora) == []
    adapted = [n for n, _ in meta_3b.named_modules() if check_target_module_exists(lora, n)]
    assert len(adapted) >= 2 * 36  # at least q_proj and v_proj of every text layer


def test_a_vision_target_is_caught(meta_3b):
    # The vision blocks' MLPs share the language model's names gate/up/down_proj.
    lora = LoraConfig(target_modules=["q_proj", "v_proj", "gate_proj"])
    vision = models.vision_lora_targets(meta_3b, lora)
    assert len(vision) == 32 and all(n.startswith("model.visual.blocks.") for n in vision)


def test_gradient_checkpointing_trains_lora(tiny_model_dir, tmp_path):
    """PEFT + checkpointing fails with "does not require grad" unless inputs require grad."""
    preset = replace(FAST, activation_checkpointing=True, max_steps=1)
    model, processor = models.load_model(tiny_model_dir, preset)
    train_set, _ = data.load_data(preset, None, seed=0)
    trainer = train.build_trainer(preset, model, processor, train_set, tmp_path, progress=False)
    # The embeddings are frozen; their output must still require grad for checkpointing.
    embedded = trainer.model.get_input_embeddings()(torch.tensor([[1, 2, 3]]))
    assert embedded.requires_grad
    trainer.train()  # raises "does not require grad" when the above is missing
    assert trainer.model.is_gradient_checkpointing and trainer.state.global_step == 1


@pytest.fixture(scope="module", params=["Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-4B-Instruct"])
def meta_qwen3(request):
    """A Qwen3-VL of a real size on the meta device: its shapes, no memory, no weights."""
    return request.param, standins.meta_model(request.param)


def test_qwen3_vl_shapes_have_the_published_values(meta_qwen3):
    model_id, model = meta_qwen3
    text, vision = model.config.text_config, model.config.vision_config
    published = {  # config.json: layers, hidden, intermediate, heads, KV heads, vision out
        "Qwen/Qwen3-VL-2B-Instruct": (28, 2048, 6144, 16, 8, 2048),
        "Qwen/Qwen3-VL-4B-Instruct": (36, 2560, 9728, 32, 8, 2560),
    }[model_id]
    assert (
        text.num_hidden_layers,
        text.hidden_size,
        text.intermediate_size,
        text.num_attention_heads,
        text.num_key_value_heads,
        vision.out_hidden_size,
    ) == published
    assert (text.head_dim, text.vocab_size) == (128, 151936)
    assert text.rope_parameters["rope_theta"] == 5e6
    assert text.rope_parameters["mrope_section"] == [24, 20, 20]
    assert (vision.depth, vision.hidden_size, vision.intermediate_size) == (24, 1024, 4096)
    assert (vision.patch_size, vision.spatial_merge_size) == (16, 2)  # 32 x 32 px per token
    assert list(vision.deepstack_visual_indexes) == [5, 11, 17]
    assert model.config.tie_word_embeddings is True
    assert model.config.image_token_id == 151655
    total = sum(p.numel() for p in model.parameters())  # the tied embedding counted once
    expected = {
        "Qwen/Qwen3-VL-2B-Instruct": 2_127_532_032,
        "Qwen/Qwen3-VL-4B-Instruct": 4_437_815_808,
    }
    assert total == expected[model_id]


@pytest.mark.parametrize("name", ["qwen3-vl-2b", "qwen3-vl-4b-qlora"])
def test_lora_counts_on_the_real_qwen3_vl_shapes(name):
    preset = presets.get_preset(name)
    model = standins.meta_model(preset.model)
    lora = train.lora_config(preset)
    assert models.vision_lora_targets(model, lora) == []  # the vision tower's attention is qkv
    text = model.config.text_config
    head = text.head_dim
    q = (text.hidden_size, text.num_attention_heads * head)  # (d_in, d_out)
    v = (text.hidden_size, text.num_key_value_heads * head)
    r = preset.lora_r
    formula = text.num_hidden_layers * (r * sum(q) + r * sum(v))
    assert standins.lora_trainable(model, lora) == formula
    # 28 x 8 x ((2048 + 2048) + (2048 + 1024)); 36 x 8 x ((2560 + 4096) + (2560 + 1024))
    assert formula == {"qwen3-vl-2b": 1_605_632, "qwen3-vl-4b-qlora": 2_949_120}[name]

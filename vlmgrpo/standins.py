"""Models of the GPU presets' real shapes, built offline, and a tiny Qwen3-VL stand-in.

`benchmarks/bench_train.py --random-weights` and `benchmarks/gpu_check.py` train randomly
initialised Qwen2.5-VL-3B, Qwen3-VL-2B and Qwen3-VL-4B where the hub is out of reach: their
time per step and memory are those of the real models, since both depend on the shapes (and
on the lengths generated, which random weights push to the limit) and not on the values.
Their answers are noise, so they say nothing about learning. The same shapes on the meta
device (no memory, no weights) let the tests count LoRA parameters on the real models.

The sizes are those of the published ``config.json`` of Qwen/Qwen2.5-VL-3B-Instruct,
Qwen/Qwen3-VL-2B-Instruct and Qwen/Qwen3-VL-4B-Instruct; the tokenizer is the tiny model's,
its vocabulary padded so that Qwen's special tokens keep their real ids (151643
``<|endoftext|>`` ... 151656 ``<|video_pad|>``) in the real 151936-row embedding.

`tiny_qwen3vl` is the Qwen3-VL family's counterpart of `vlmgrpo.tiny`: the real classes at
tiny sizes, with the tiny model's tokenizer and cold start, so the Qwen3-VL presets can be
rehearsed on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from vlmgrpo import tiny
from vlmgrpo.utils import atomic_folder

# Qwen2's special tokens in id order, from 151643 on (its tokenizer's added_tokens).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_FIRST_SPECIAL_ID = 151643
QWEN25_VL_3B = {
    "vocab_size": 151936,  # the embedding's rows; the tokenizer uses fewer ids
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "mrope_section": [16, 24, 24],
    "tie_word_embeddings": True,
    "vision_depth": 32,
    "vision_hidden_size": 1280,
    "vision_intermediate_size": 3420,
    "vision_num_heads": 16,
    "vision_out_hidden_size": 2048,
    "vision_fullatt_block_indexes": [7, 15, 23, 31],
    "vision_window_size": 112,
    "vision_tokens_per_second": 2,
}
# Qwen3-VL's published config.json values. Both tie the output layer to the embedding.
_QWEN3_VL_COMMON = {
    "vocab_size": 151936,
    "head_dim": 128,
    "max_position_embeddings": 262144,
    "rms_norm_eps": 1e-6,
    "rope_theta": 5_000_000.0,
    "mrope_section": [24, 20, 20],  # interleaved M-RoPE
    "tie_word_embeddings": True,
    "vision_depth": 24,
    "vision_hidden_size": 1024,
    "vision_intermediate_size": 4096,
    "vision_num_heads": 16,
    "vision_num_position_embeddings": 2304,
    "vision_deepstack_visual_indexes": [5, 11, 17],
    "vision_patch_size": 16,
    "vision_spatial_merge_size": 2,
}
QWEN3_VL_2B = {
    **_QWEN3_VL_COMMON,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "vision_out_hidden_size": 2048,
}
QWEN3_VL_4B = {
    **_QWEN3_VL_COMMON,
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vision_out_hidden_size": 2560,
}
# The hub model each random model stands in for: `random_model` builds it.
REAL_SHAPES = {
    "Qwen/Qwen2.5-VL-3B-Instruct": "qwen2.5-vl-3b",
    "Qwen/Qwen3-VL-2B-Instruct": "qwen3-vl-2b",
    "Qwen/Qwen3-VL-4B-Instruct": "qwen3-vl-4b",
}


def qwen_id_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny model's BPE tokenizer, padded so Qwen's special tokens have their real ids."""
    learned = json.loads(tiny.build_tokenizer(tiny.TinySpec()).backend_tokenizer.to_str())
    vocab = dict(learned["model"]["vocab"])
    # Ids nothing encodes to: they only move the special tokens to where Qwen has them.
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), QWEN_FIRST_SPECIAL_ID)})
    merges = [tuple(pair) for pair in learned["model"]["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=QWEN25_VL_3B["max_position_embeddings"],
        chat_template=tiny.CHAT_TEMPLATE,
    )


def qwen25vl_3b_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """Qwen2.5-VL-3B-Instruct's architecture, with the special-token ids read from `tokenizer`."""
    c = QWEN25_VL_3B
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config=_text_config(c, ids),
        vision_config={
            "depth": c["vision_depth"],
            "hidden_size": c["vision_hidden_size"],
            "intermediate_size": c["vision_intermediate_size"],
            "num_heads": c["vision_num_heads"],
            "out_hidden_size": c["vision_out_hidden_size"],
            "fullatt_block_indexes": c["vision_fullatt_block_indexes"],
            "window_size": c["vision_window_size"],
            "tokens_per_second": c["vision_tokens_per_second"],
        },
        tie_word_embeddings=c["tie_word_embeddings"],
        **_vision_token_ids(ids),
    )


def qwen3vl_config(sizes: dict, tokenizer: PreTrainedTokenizerFast) -> Qwen3VLConfig:
    """A Qwen3-VL architecture of `sizes` (QWEN3_VL_2B, ...), with `tokenizer`'s token ids."""
    c = sizes
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    text = _text_config(c, ids)
    text["head_dim"] = c["head_dim"]  # 128, not hidden / heads (80 on the 4B)
    text["rope_parameters"]["mrope_interleaved"] = True
    return Qwen3VLConfig(
        text_config=text,
        vision_config={
            "depth": c["vision_depth"],
            "hidden_size": c["vision_hidden_size"],
            "intermediate_size": c["vision_intermediate_size"],
            "num_heads": c["vision_num_heads"],
            "out_hidden_size": c["vision_out_hidden_size"],
            "num_position_embeddings": c["vision_num_position_embeddings"],
            "deepstack_visual_indexes": c["vision_deepstack_visual_indexes"],
            "patch_size": c["vision_patch_size"],
            "spatial_merge_size": c["vision_spatial_merge_size"],
        },
        tie_word_embeddings=c["tie_word_embeddings"],
        **_vision_token_ids(ids),
    )


def _text_config(c: dict, ids: dict[str, int]) -> dict:
    """The text_config both families share, from a sizes dict and the special-token ids."""
    return {
        "vocab_size": c["vocab_size"],
        "hidden_size": c["hidden_size"],
        "intermediate_size": c["intermediate_size"],
        "num_hidden_layers": c["num_hidden_layers"],
        "num_attention_heads": c["num_attention_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "max_position_embeddings": c["max_position_embeddings"],
        "rms_norm_eps": c["rms_norm_eps"],
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": c["rope_theta"],
            "mrope_section": c["mrope_section"],
        },
        # Inside text_config, or transformers falls back to Qwen's 151k-vocabulary ids.
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _vision_token_ids(ids: dict[str, int]) -> dict[str, int]:
    """The config's image, video and vision start/end token ids."""
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def qwen3vl_processor(
    tokenizer: PreTrainedTokenizerFast, min_pixels: int = 65536, max_pixels: int = 16777216
) -> Qwen3VLProcessor:
    """Qwen3-VL's processor: 16-px patches merged 2 x 2, so one image token per 32 x 32 px.

    The defaults are the released preprocessor_config.json's pixel bounds (64 to 16384
    image tokens); presets cap image size before the processor sees them.
    """
    image_processor = Qwen2VLImageProcessor(
        patch_size=16,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(),
        chat_template=tiny.CHAT_TEMPLATE,
    )


def meta_model(model_id: str) -> PreTrainedModel:
    """The model of `model_id`'s real shape (a REAL_SHAPES key) on the meta device: no memory."""
    model, _ = _model_and_processor(model_id)
    return model


def lora_trainable(model: PreTrainedModel, lora: LoraConfig) -> int:
    """How many parameters `lora` trains on `model` (meta models included: nothing is copied)."""
    return get_peft_model(model, lora).get_nb_trainable_parameters()[0]


def _model_and_processor(
    model_id: str, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A model of `model_id`'s shape (random; on the meta device without `dtype`)."""
    if model_id not in REAL_SHAPES:
        raise KeyError(f"no shape for {model_id}; known: {', '.join(REAL_SHAPES)}")
    tokenizer = qwen_id_tokenizer()
    if model_id == "Qwen/Qwen2.5-VL-3B-Instruct":
        config = qwen25vl_3b_config(tokenizer)
        model_class = Qwen2_5_VLForConditionalGeneration
        # The real image processor's defaults; presets cap image size before it sees them.
        processor = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(),
            chat_template=tiny.CHAT_TEMPLATE,
        )
    else:
        sizes = QWEN3_VL_2B if model_id == "Qwen/Qwen3-VL-2B-Instruct" else QWEN3_VL_4B
        config = qwen3vl_config(sizes, tokenizer)
        model_class = Qwen3VLForConditionalGeneration
        processor = qwen3vl_processor(tokenizer)
    if dtype is None:
        with torch.device("meta"):
            return model_class(config), processor
    return model_class._from_config(config, dtype=dtype), processor


def random_model(
    model_id: str,
    out_dir: str | Path,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    force: bool = False,
) -> Path:
    """Build and save a random model of `model_id`'s shape and its processor.

    In bf16: about 7.5 GB for Qwen2.5-VL-3B, 4.3 GB for Qwen3-VL-2B, 8.9 GB for Qwen3-VL-4B.
    """
    out = Path(out_dir)
    if (out / "config.json").exists() and not force:
        return out
    torch.manual_seed(seed)
    model, processor = _model_and_processor(model_id, dtype)
    _save(model, processor, out)
    return out


def tiny_qwen3vl(
    out_dir: str | Path, spec: tiny.TinySpec | None = None, force: bool = False
) -> Path:
    """Build, cold-start and save a tiny Qwen3-VL with the tiny model's sizes and tokenizer.

    The cold start (`vlmgrpo.tiny.warm_up`) makes its answers end, as a real model's do, so a
    rehearsal of a Qwen3-VL preset on the CPU takes seconds per step instead of running every
    completion to the preset's limit.
    """
    out = Path(out_dir)
    if (out / "config.json").exists() and not force:
        return out
    spec = spec or tiny.TinySpec()
    torch.manual_seed(spec.seed)
    tokenizer = tiny.build_tokenizer(spec)
    half = spec.text_hidden // spec.text_heads // 2
    sizes = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "head_dim": 2 * half,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        # Qwen3-VL's split of each head's rotary frequencies, [24, 20, 20] of 64, scaled.
        "mrope_section": [half - 2 * (5 * half // 16), 5 * half // 16, 5 * half // 16],
        "tie_word_embeddings": True,
        "vision_depth": spec.vision_depth,
        "vision_hidden_size": spec.vision_hidden,
        "vision_intermediate_size": spec.vision_intermediate,
        "vision_num_heads": spec.vision_heads,
        "vision_out_hidden_size": spec.text_hidden,
        "vision_num_position_embeddings": 256,  # a 16 x 16 grid, interpolated to the image
        "vision_deepstack_visual_indexes": [0],
        "vision_patch_size": 16,
        "vision_spatial_merge_size": 2,
    }
    model = Qwen3VLForConditionalGeneration(qwen3vl_config(sizes, tokenizer))
    # A synthetic image (84 x 84 px) becomes 3 x 3 tokens of 32 px, as on the tiny Qwen2.5-VL.
    processor = qwen3vl_processor(tokenizer, min_pixels=2 * 2 * 32 * 32, max_pixels=256 * 32 * 32)
    tiny.warm_up(model, processor, spec, progress=False)
    _save(model, processor, out)
    return out


def _save(model: PreTrainedModel, processor: ProcessorMixin, out: Path) -> None:
    """Save `model` (greedy stops at Qwen's end tokens) and `processor` to `out`, atomically."""
    config = model.config.text_config
    gen = model.generation_config
    gen.eos_token_id = [config.eos_token_id, config.pad_token_id]
    gen.pad_token_id = gen.bos_token_id = config.pad_token_id
    with atomic_folder(out) as tmp:  # an interrupted save never looks finished
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)

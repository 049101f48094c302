"""A randomly initialised Qwen2.5-VL-3B, built offline, for measuring speed and memory.

`benchmarks/bench_train.py --random-weights` trains it where the hub is out of reach: its
time per step and memory are those of the real model, since both depend on the shapes (and
on the lengths generated, which random weights push to the limit) and not on the values.
Its answers are noise, so it says nothing about learning.

The sizes are those of Qwen/Qwen2.5-VL-3B-Instruct's published ``config.json``; the
tokenizer is the tiny model's, its vocabulary padded so that Qwen's special tokens keep their
real ids (151643 ``<|endoftext|>`` ... 151656 ``<|video_pad|>``) in the real 151936-row
embedding.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from vlmgrpo import tiny

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
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config={
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
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
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
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=c["tie_word_embeddings"],
    )


def random_qwen25vl_3b(
    out_dir: str | Path, seed: int = 0, dtype: torch.dtype = torch.bfloat16, force: bool = False
) -> Path:
    """Build and save a random Qwen2.5-VL-3B and its processor (about 7.5 GB in bf16)."""
    out = Path(out_dir)
    if (out / "config.json").exists() and not force:
        return out
    tokenizer = qwen_id_tokenizer()
    # The real image processor's defaults; presets cap image size before it sees them.
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=tiny.CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    config = qwen25vl_3b_config(tokenizer)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    gen = model.generation_config
    gen.eos_token_id = [config.text_config.eos_token_id, config.text_config.pad_token_id]
    gen.pad_token_id = gen.bos_token_id = config.text_config.pad_token_id
    # A temporary folder first, so an interrupted save never looks finished.
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

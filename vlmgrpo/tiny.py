"""The embedded default model: a tiny Qwen2.5-VL built offline, then given a cold start.

Everything here uses the real classes (`Qwen2_5_VLForConditionalGeneration`,
`Qwen2_5_VLProcessor`, `Qwen2VLImageProcessor`), so the rest of the course cannot tell it
from a hub checkpoint: it is saved with `save_pretrained` and loaded with `from_pretrained`.
Only the sizes are small, and the tokenizer is a byte-level BPE trained here on the
synthetic task's text, carrying Qwen's special tokens and chat template.

The cold start is DeepSeek-R1's: a short supervised warm-up on worked answers so that the
policy already follows the output format and can see. Its answers come from a sloppy
annotator (`vlmgrpo.synthetic.annotator_label`), so the warmed-up model often names the
neighbouring hue; the right colour is in its samples, but not its greedy choice. That is the
situation where GRPO, rewarded by the true count, has something to teach.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from filelock import FileLock  # a dependency of torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from vlmgrpo import synthetic
from vlmgrpo.prompts import SYSTEM_PROMPT, build_conversation
from vlmgrpo.utils import progress_bar

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Single tokens (not special, so decoding keeps them): short completions, cheap sampling.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2-VL's chat template, testing `type` first: Arrow gives every content item every key,
# so an `'image' in content` test would render text items as images.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VERSION = 4  # bump when the build below changes, so cached models are rebuilt


@dataclass(frozen=True)
class TinySpec:
    """Sizes and cold-start settings of the tiny model; the cache is keyed by them."""

    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 384
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 128
    vocab_size: int = 400
    warmup_steps: int = 150
    warmup_batch: int = 32
    warmup_lr: float = 2e-3
    mislabel: float = 0.6
    seed: int = 0

    def key(self) -> str:
        """A short hash of the spec, naming its cache folder."""
        blob = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cache_root() -> Path:
    """Where built tiny models live: $VLMGRPO_CACHE or ~/.cache/vlmgrpo."""
    return Path(os.environ.get("VLMGRPO_CACHE", Path.home() / ".cache" / "vlmgrpo"))


def cache_dir(spec: TinySpec = TinySpec()) -> Path:
    """The cache folder of the tiny model built from `spec` (a workshop kit ships it)."""
    return cache_root() / f"tiny-qwen2.5-vl-{spec.key()}"


def build_tokenizer(spec: TinySpec) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the task's text, with Qwen's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([SYSTEM_PROMPT, *synthetic.corpus()] * 4, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
    )


def build_processor(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLProcessor:
    """The real Qwen2.5-VL processor, sized so one synthetic image is 9 image tokens."""
    pixels = synthetic.IMAGE_SIZE * synthetic.IMAGE_SIZE
    image_processor = Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels)
    video_processor = Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_model(
    spec: TinySpec, tokenizer: PreTrainedTokenizerFast
) -> Qwen2_5_VLForConditionalGeneration:
    """A randomly initialised Qwen2.5-VL with the spec's sizes and the tokenizer's ids."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = spec.text_hidden // spec.text_heads
    # Qwen splits each head's rotary frequencies between time, height and width (mrope),
    # in the 3B model's proportions [16, 24, 24] of 64.
    half = head_dim // 2
    mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope,
            },
            # Inside text_config, or transformers falls back to Qwen's 151k-vocabulary ids.
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.text_hidden,
            "fullatt_block_indexes": [spec.vision_depth - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.bos_token_id = ids["<|endoftext|>"]
    return model


def _cold_start_batch(processor, rng: random.Random, spec: TinySpec, size: int) -> dict:
    """A batch of annotated conversations; labels cover only the assistant's reply."""
    texts, images = [], []
    for _ in range(size):
        hue, shape = rng.choice(synthetic.NAMES), rng.choice(synthetic.SHAPES)
        images.append(synthetic.draw_shape(hue, rng, shape))
        # The reasoning is right; the answer is the sloppy annotator's.
        think = synthetic.describe(hue, rng.randrange(len(synthetic.THINKS)))
        label = synthetic.annotator_label(hue, spec.mislabel, rng)
        conversation = build_conversation(rng.choice(synthetic.QUESTIONS))
        reply = [{"type": "text", "text": synthetic.completion(label, think)}]
        conversation.append({"role": "assistant", "content": reply})
        texts.append(processor.apply_chat_template(conversation, tokenize=False))
    batch = processor(text=texts, images=images, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    start = processor.tokenizer.convert_tokens_to_ids("<|im_start|>")
    header = len(processor.tokenizer("assistant\n")["input_ids"])
    for row in range(labels.shape[0]):
        last_turn = (batch["input_ids"][row] == start).nonzero().max().item()
        labels[row, : last_turn + 1 + header] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    return batch


def warm_up(model, processor, spec: TinySpec, progress: bool = True) -> list[float]:
    """Supervised cold start on the annotator's worked answers; returns the loss per step."""
    rng = random.Random(spec.seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.warmup_lr, weight_decay=0.0)
    warm = max(1, spec.warmup_steps // 10)

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, spec.warmup_steps - warm)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    side, processor.tokenizer.padding_side = processor.tokenizer.padding_side, "right"
    model.train()
    losses = []
    try:
        bar = progress_bar(range(spec.warmup_steps), desc="cold start", disable=not progress)
        for _ in bar:
            batch = _cold_start_batch(processor, rng, spec, spec.warmup_batch)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}")
    finally:  # an interrupted warm-up still leaves the processor and model usable
        processor.tokenizer.padding_side = side
        model.eval()
    return losses


def make_tiny(
    spec: TinySpec = TinySpec(), out_dir: str | Path | None = None, force: bool = False
) -> Path:
    """Build, warm up and save the tiny model (cached by spec); returns its folder."""
    out = Path(out_dir) if out_dir is not None else cache_dir(spec)
    if (out / "config.json").exists() and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # Two notebooks opened at once must not build the same model side by side: the second
    # waits for the first, then finds the finished build.
    with FileLock(str(out) + ".lock"):
        if (out / "config.json").exists() and not force:
            return out
        _build(spec, out)
    return out


def _build(spec: TinySpec, out: Path) -> None:
    torch.manual_seed(spec.seed)
    tokenizer = build_tokenizer(spec)
    processor = build_processor(tokenizer)
    model = build_model(spec, tokenizer)
    losses = warm_up(model, processor, spec)
    # Save to a temporary folder first, so an interrupted build never looks finished.
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "tiny_spec.json").write_text(
            json.dumps({**asdict(spec), "version": VERSION, "cold_start_loss": losses}, indent=1)
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""The embedded default model: a tiny Qwen2.5-VL built offline, then given a cold start.

Everything here uses the real classes (`Qwen2_5_VLForConditionalGeneration`,
`Qwen2_5_VLProcessor`, `Qwen2VLImageProcessor`), so the rest of the course cannot tell it
from a hub checkpoint: it is saved with `save_pretrained` and loaded with `from_pretrained`.
Only the sizes are small, and the tokenizer is a byte-level BPE trained here on the
synthetic task's text, carrying Qwen's special tokens and chat template.

Each synthetic task (`vlmgrpo.tasks.TASKS`) has its tiny model (`SPECS`). The cold start is
DeepSeek-R1's: a short supervised warm-up on worked answers so that the policy already
follows the output format and can see. Its traces come from a sloppy annotator, so the
warmed-up model often names the neighbouring hue; the right answer is in its samples, but
not its greedy choice. That is the situation where GRPO, rewarded by the true answer, has
something to teach.

The price task's model gets a pretraining first (`pretrain_copying`): looking a hue up in the
question's price list is what an induction head does (attend to the earlier occurrence of the
current token, copy what followed it; Olsson et al., 2022). Real language models learn
induction heads in pretraining; the tiny model learns them here, from repeated random
token sequences, in about a minute.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
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

from vlmgrpo import colours
from vlmgrpo.prompts import SYSTEM_PROMPT, build_conversation
from vlmgrpo.tasks import get_task
from vlmgrpo.utils import atomic_folder, progress_bar

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
VERSION = 5  # bump when the build below changes, so cached models are rebuilt


@dataclass(frozen=True)
class TinySpec:
    """Sizes, pretraining and cold-start settings of a tiny model; the cache is keyed by them."""

    task: str = "colour"  # the synthetic task of its cold start (`vlmgrpo.tasks.TASKS`)
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
    # Pretraining on copying (`pretrain_copying`), at most `copy_steps` steps on repeated
    # random token sequences, then at most `copy_context_steps` with the chat's system prompt
    # before them; 0 skips it.
    copy_steps: int = 0
    copy_lr: float = 2e-3
    copy_batch: int = 32
    copy_context_steps: int = 0
    copy_context_lr: float = 1e-3
    copy_context_batch: int = 16
    copy_settle: int = 50  # steps a phase goes on once its loss is low
    seed: int = 0

    def key(self) -> str:
        """A short hash of the spec, naming its cache folder."""
        blob = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


# The tiny model of each synthetic task. The price task's: a copy of the colour model's sizes
# with 2 text layers of 8 heads (a 2-layer model learns induction heads fastest), pretrained
# on copying, then cold-started at a lower rate that keeps what the pretraining taught.
SPECS = {
    "colour": TinySpec(),
    "prices": TinySpec(
        task="prices",
        text_layers=2,
        text_heads=8,
        text_kv_heads=8,
        warmup_steps=120,
        warmup_lr=1e-3,
        copy_steps=2000,
        copy_context_steps=1000,
    ),
}


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
    corpus = get_task(spec.task).corpus()
    tok.train_from_iterator([SYSTEM_PROMPT, *corpus] * 4, trainer=trainer)
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
    pixels = colours.IMAGE_SIZE * colours.IMAGE_SIZE
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
        image, question, trace = get_task(spec.task).annotated(rng, spec.mislabel)
        images.append(image)
        conversation = build_conversation(question)
        conversation.append({"role": "assistant", "content": [{"type": "text", "text": trace}]})
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


def _copy_batch(
    rng: random.Random, gen: torch.Generator, vocab: int, prefix: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `prefix + x + noise + x` (x random, 6-30 tokens), labels on the second x.

    The lengths vary, so that only the content, not a fixed distance, tells what comes next.
    """
    length, gap = rng.randint(6, 30), rng.randint(0, 10)
    x = torch.randint(0, vocab, (size, length), generator=gen)
    noise = torch.randint(0, vocab, (size, gap), generator=gen)
    ids = torch.cat([prefix.expand(size, -1), x, noise, x], dim=1)
    labels = ids.clone()
    labels[:, : prefix.shape[1] + length + gap + 1] = -100
    return ids, labels


def pretrain_copying(model, processor, spec: TinySpec, progress: bool = True) -> list[list[float]]:
    """Teach the model to copy in context (induction heads); returns each phase's losses.

    Two phases, each until the loss has stayed low (mean of 20 steps under 1 nat) for
    `copy_settle` steps, or its step limit: repeated random token sequences alone, where the
    heads form (the loss falls from ~6 to ~0.2 within a few hundred steps); then the same sequences
    after the chat's system prompt, so that the heads also work in a prompt's position,
    behind a hundred tokens they must look past.
    """
    tokenizer = processor.tokenizer
    vocab = len(tokenizer) - len(SPECIAL_TOKENS) - len(TAG_TOKENS)  # the learned tokens
    header = processor.apply_chat_template(build_conversation(""), tokenize=False)
    header = header.split("<|vision_start|>")[0]  # system prompt, then the user's turn
    rng, gen = random.Random(spec.seed + 2), torch.Generator().manual_seed(spec.seed + 2)
    phases = (
        (torch.empty(1, 0, dtype=torch.long), spec.copy_steps, spec.copy_lr, spec.copy_batch),
        (tokenizer(header, return_tensors="pt")["input_ids"], spec.copy_context_steps,
         spec.copy_context_lr, spec.copy_context_batch),
    )  # fmt: skip
    model.train()
    phase_losses: list[list[float]] = []
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.copy_lr)
    bar = progress_bar(
        total=spec.copy_steps + spec.copy_context_steps, desc="copying", disable=not progress
    )
    try:
        for prefix, steps, lr, size in phases:
            for group in optimizer.param_groups:
                group["lr"] = lr
            low = 0  # steps since the 20-step mean loss fell under 1 nat
            losses: list[float] = []
            phase_losses.append(losses)
            for step in range(steps):
                ids, labels = _copy_batch(rng, gen, vocab, prefix, size)
                loss = model(input_ids=ids, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                recent = losses[-20:]
                low = low + 1 if step >= 20 and sum(recent) / 20 < 1.0 else 0
                if low >= spec.copy_settle:
                    break
        bar.total = bar.n  # the phases end early, as they should: the bar ends full
    finally:
        bar.close()
        model.eval()
    return phase_losses


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
    copy_losses = pretrain_copying(model, processor, spec) if spec.copy_steps else []
    losses = warm_up(model, processor, spec)
    with atomic_folder(out) as tmp:  # an interrupted build never looks finished
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "tiny_spec.json").write_text(
            json.dumps(
                {
                    **asdict(spec),
                    "version": VERSION,
                    "copy_loss": copy_losses,
                    "cold_start_loss": losses,
                },
                indent=1,
            )
        )

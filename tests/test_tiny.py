"""Tests for vlmgrpo.tiny: tokenizer, chat template, processor, build, cache and cold start."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import datasets
import pytest
import torch
from transformers import AutoConfig, AutoProcessor, GenerationConfig
from transformers import Qwen2_5_VLForConditionalGeneration as Model

from vlmgrpo import colours, tiny
from vlmgrpo.prompts import build_conversation

# A few steps on two examples: the real training code path, tenths of a second per build.
SPEC = tiny.TinySpec(warmup_steps=2, warmup_batch=2)
QWEN_TOKENS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|image_pad|>",
    "<|vision_end|>",
    "<|endoftext|>",
]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
CONFIG_TOKENS = {
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
}
QUESTION = "What colour is the shape?"


def no_warm_up(model, processor, spec, progress=True):
    """Stands in for the cold start where only the build and cache logic are under test."""
    return []


def shift_warm_up(model, processor, spec, progress=True):
    """A stand-in cold start whose weights differ from a fresh build's."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    return []


def interrupt(*args, **kwargs):
    raise RuntimeError("interrupted")


def prompt_batch(processor, hues):
    """Generation prompts for one synthetic image per hue, as the trainer builds them."""
    rng = random.Random(0)
    texts = [
        processor.apply_chat_template(
            build_conversation(colours.QUESTIONS[i % len(colours.QUESTIONS)]),
            tokenize=False,
            add_generation_prompt=True,
        )
        for i in range(len(hues))
    ]
    images = [colours.draw_shape(hue, rng) for hue in hues]
    return processor(text=texts, images=images, padding=True, return_tensors="pt")


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread. The models are tiny, and on a busy two-core machine a second
    thread makes torch's pool contend with other processes: seconds instead of tenths."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.build_tokenizer(SPEC)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return tiny.build_processor(tokenizer)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny.make_tiny(SPEC, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def warmed():
    """A model after a short real cold start, with its own processor (warm_up mutates it)."""
    spec = dataclasses.replace(SPEC, warmup_steps=20, warmup_batch=2)
    tokenizer = tiny.build_tokenizer(spec)
    processor = tiny.build_processor(tokenizer)
    model = tiny.build_model(spec, tokenizer)
    losses = tiny.warm_up(model, processor, spec, progress=False)
    return model, processor, losses


# Tokenizer


@pytest.mark.parametrize("token", QWEN_TOKENS + TAGS)
def test_token_encodes_to_one_id(tokenizer, token):
    ids = tokenizer.encode(token, add_special_tokens=False)
    assert len(ids) == 1
    assert tokenizer.convert_ids_to_tokens(ids[0]) == token
    # Also inside running text, where BPE could otherwise merge it with its neighbours.
    assert ids[0] in tokenizer.encode(f"red{token}red", add_special_tokens=False)


@pytest.mark.parametrize(
    "text",
    [
        colours.completion("red"),
        colours.completion("purple", think="It is not red."),
        "Quelle est la réponse? ∫ x dx",
        "  two  spaces,\ttabs\nand an emoji 🎨",
    ],
)
def test_round_trip(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tags_are_not_special(tokenizer):
    text = "<|im_start|>assistant\n" + colours.completion("red") + "<|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    # Qwen's tokens go, the tags stay: the reward functions read them in decoded text.
    assert tokenizer.decode(ids, skip_special_tokens=True) == "assistant\n" + (
        colours.completion("red")
    )
    assert set(TAGS).isdisjoint(tokenizer.all_special_tokens)


def test_eos_and_pad(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    assert tokenizer.padding_side == "left"


# Chat template

# Arrow stores every content item with every key, the missing ones as None.
TEXT_ITEMS = {
    "plain": {"type": "text", "text": QUESTION},
    "arrow": {"type": "text", "text": QUESTION, "image": None},
}
IMAGE_ITEMS = {"plain": {"type": "image"}, "arrow": {"type": "image", "image": None, "text": None}}


@pytest.mark.parametrize("renderer", ["tokenizer", "processor"])
@pytest.mark.parametrize("shape", ["plain", "arrow"])
@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_chat_template_one_vision_block_per_image(request, renderer, shape, n_images):
    render = request.getfixturevalue(renderer).apply_chat_template
    content = [IMAGE_ITEMS[shape]] * n_images + [TEXT_ITEMS[shape]]
    messages = [{"role": "user", "content": content}]
    text = render(messages, tokenize=False, add_generation_prompt=True)
    assert text.count(VISION) == n_images
    assert text.count("<|image_pad|>") == n_images
    assert text.count(QUESTION) == 1
    assert "None" not in text
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_after_arrow_round_trip(processor, add_generation_prompt):
    conversation = build_conversation(QUESTION)
    stored = datasets.Dataset.from_list([{"prompt": conversation}])[0]["prompt"]
    kwargs = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    text = processor.apply_chat_template(stored, **kwargs)
    assert text == processor.apply_chat_template(conversation, **kwargs)
    assert text.count(VISION) == 1
    assert text.endswith("<|im_start|>assistant\n") == add_generation_prompt


# Processor and config


def test_processor_expands_one_image_to_nine_tokens(processor, tokenizer):
    batch = prompt_batch(processor, ["red"])
    image_tokens = batch["image_grid_thw"].prod(dim=-1) // 4
    assert image_tokens.tolist() == [9]
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["input_ids"] == image_pad).sum().item() == 9


@pytest.mark.parametrize("source", ["built", "saved"])
def test_config_ids_come_from_the_tokenizer(request, tokenizer, source):
    if source == "built":
        model = tiny.build_model(SPEC, tokenizer)
        config, generation = model.config, model.generation_config
    else:
        folder = request.getfixturevalue("tiny_dir")
        config, generation = (
            AutoConfig.from_pretrained(folder),
            GenerationConfig.from_pretrained(folder),
        )
    for attribute, token in CONFIG_TOKENS.items():
        assert getattr(config, attribute) == tokenizer.convert_tokens_to_ids(token)
    text = config.text_config
    assert text.vocab_size == len(tokenizer)
    assert text.eos_token_id == tokenizer.eos_token_id
    assert text.pad_token_id == tokenizer.pad_token_id
    for token_id in (text.bos_token_id, text.eos_token_id, text.pad_token_id):
        assert 0 <= token_id < text.vocab_size  # not Qwen's 151k-vocabulary ids
    assert tokenizer.eos_token_id in generation.eos_token_id
    assert generation.pad_token_id == tokenizer.pad_token_id
    assert all(0 <= token_id < text.vocab_size for token_id in generation.eos_token_id)


# Build, save, load, cache


def test_build_is_deterministic(tiny_dir, tmp_path):
    again = tiny.make_tiny(SPEC, tmp_path / "again")
    first = Model.from_pretrained(tiny_dir).state_dict()
    second = Model.from_pretrained(again).state_dict()
    assert first.keys() == second.keys()
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


@pytest.mark.parametrize("field", [field.name for field in dataclasses.fields(tiny.TinySpec)])
def test_key_changes_with_every_field(field):
    spec = tiny.TinySpec()
    value = getattr(spec, field)
    changed = dataclasses.replace(spec, **{field: value * 2 if value else 1})
    assert spec.key() == tiny.TinySpec().key()
    assert changed.key() != spec.key()


def test_key_changes_with_version(monkeypatch):
    before = SPEC.key()
    monkeypatch.setattr(tiny, "VERSION", tiny.VERSION + 1)
    assert SPEC.key() != before


def test_saved_model_matches_in_memory(tmp_path, tokenizer):
    processor = tiny.build_processor(tokenizer)
    model = tiny.build_model(SPEC, tokenizer).eval()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = Model.from_pretrained(tmp_path).eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    batch = prompt_batch(processor, ["red", "blue"])
    loaded_batch = prompt_batch(loaded_processor, ["red", "blue"])
    assert batch.keys() == loaded_batch.keys()
    for key in batch:
        assert torch.equal(batch[key], loaded_batch[key]), key
    # A dropped tied lm_head would be re-initialised on load and change the logits.
    torch.testing.assert_close(logits(loaded, loaded_batch), logits(model, batch))


def test_make_tiny_folder_loads(tiny_dir, tokenizer):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    first, second = Model.from_pretrained(tiny_dir).eval(), Model.from_pretrained(tiny_dir).eval()
    batch = prompt_batch(processor, ["green"])
    torch.testing.assert_close(logits(first, batch), logits(second, batch))
    loaded = processor.tokenizer
    assert loaded.padding_side == "left"
    assert (loaded.eos_token, loaded.pad_token) == ("<|im_end|>", "<|endoftext|>")
    for token in QWEN_TOKENS + TAGS:
        assert loaded.encode(token, add_special_tokens=False) == tokenizer.encode(
            token, add_special_tokens=False
        )
    record = json.loads((tiny_dir / "tiny_spec.json").read_text())
    assert {key: record[key] for key in dataclasses.asdict(SPEC)} == dataclasses.asdict(SPEC)
    assert len(record["cold_start_loss"]) == SPEC.warmup_steps


def test_make_tiny_caches_by_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMGRPO_CACHE", str(tmp_path / "cache"))
    calls = []

    def counting_warm_up(*args, **kwargs):
        calls.append(args[2])
        return no_warm_up(*args, **kwargs)

    monkeypatch.setattr(tiny, "warm_up", counting_warm_up)
    folder = tiny.make_tiny(SPEC)
    assert folder.parent == tmp_path / "cache"
    assert SPEC.key() in folder.name
    assert (folder / "config.json").is_file()
    weights = folder / "model.safetensors"
    mtime = weights.stat().st_mtime_ns

    assert tiny.make_tiny(SPEC) == folder
    assert len(calls) == 1
    assert weights.stat().st_mtime_ns == mtime

    other = tiny.make_tiny(dataclasses.replace(SPEC, seed=1))
    assert other != folder
    assert len(calls) == 2

    assert tiny.make_tiny(SPEC, force=True) == folder
    assert calls == [SPEC, dataclasses.replace(SPEC, seed=1), SPEC]
    assert (folder / "config.json").is_file()
    # Nothing left over but the builds and their lock files (empty; they serialise builds).
    left = sorted(path.name for path in folder.parent.iterdir() if path.suffix != ".lock")
    assert left == sorted([folder.name, other.name])
    locks = [path for path in folder.parent.iterdir() if path.suffix == ".lock"]
    assert all(path.stat().st_size == 0 for path in locks)


@pytest.mark.parametrize("stage", ["warm_up", "save"])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_build_never_looks_finished(tmp_path, monkeypatch, stage, existing):
    out = tmp_path / "model"
    if existing:
        monkeypatch.setattr(tiny, "warm_up", shift_warm_up)
        tiny.make_tiny(SPEC, out)
        before = Model.from_pretrained(out).state_dict()
    monkeypatch.setattr(tiny, "warm_up", interrupt if stage == "warm_up" else no_warm_up)
    if stage == "save":  # after the weights are written, before the processor is
        monkeypatch.setattr(tiny.Qwen2_5_VLProcessor, "save_pretrained", interrupt)
    with pytest.raises(RuntimeError, match="interrupted"):
        tiny.make_tiny(SPEC, out, force=True)
    if existing:  # a failed rebuild leaves the previous finished build intact
        after = Model.from_pretrained(out).state_dict()
        assert all(torch.equal(before[name], after[name]) for name in before)
    else:
        assert not (out / "config.json").exists()
    monkeypatch.undo()
    monkeypatch.setattr(tiny, "warm_up", no_warm_up)
    folder = tiny.make_tiny(SPEC, out)  # the next call finishes the build, or reuses the old
    assert (folder / "config.json").is_file()
    assert (folder / "tokenizer.json").is_file()
    AutoProcessor.from_pretrained(folder)


# Cold start


def test_cold_start_labels_cover_only_the_reply(tokenizer):
    processor = tiny.build_processor(tokenizer)
    batch = tiny._cold_start_batch(processor, random.Random(0), SPEC, size=3)
    for ids, labels, mask in zip(
        batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True
    ):
        kept = labels != -100
        assert torch.equal(labels[kept], ids[kept])
        assert not kept[mask == 0].any()
        reply = tokenizer.decode(labels[kept])
        think = reply.split("<think>")[1].split("</think>")[0]
        assert reply.startswith("<think>") and "</think><answer>" in reply
        assert reply.rstrip("\n").endswith("</answer><|im_end|>")
        answer = reply.split("<answer>")[1].split("</answer>")[0]
        assert answer in colours.NAMES
        # The reasoning names one hue and no form; the answer is that hue or its slip.
        hue = colours.think_hue(reply)
        assert colours.named_hues(think) == [hue]
        assert not {"circle", "square"} & set(think.replace(".", " ").split())
        assert answer in (hue, colours.NAMES[(colours.NAMES.index(hue) + 1) % 6])


def test_warm_up_lowers_loss(warmed):
    model, processor, losses = warmed
    assert len(losses) == 20
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) / 5 < losses[0]
    # Left ready for sampling: eval mode, and left padding for batched generation.
    assert not model.training
    assert processor.tokenizer.padding_side == "left"


def test_warm_up_changes_weights(tokenizer):
    processor = tiny.build_processor(tokenizer)
    model = tiny.build_model(SPEC, tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tiny.warm_up(model, processor, SPEC, progress=False)
    moved = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert any(name.startswith("model.visual") for name in moved)
    assert any(name.startswith("model.language_model") for name in moved)


def test_warm_up_single_step(tokenizer):
    spec = dataclasses.replace(SPEC, warmup_steps=1)
    processor = tiny.build_processor(tokenizer)
    model = tiny.build_model(spec, tokenizer)
    assert len(tiny.warm_up(model, processor, spec, progress=False)) == 1


def test_greedy_generation(warmed):
    model, processor, _ = warmed
    batch = prompt_batch(processor, ["red", "yellow"])
    max_new_tokens = 24
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    new = output[:, batch["input_ids"].shape[1] :]
    assert 0 < new.shape[1] <= max_new_tokens
    assert new.max().item() < model.config.text_config.vocab_size
    texts = processor.batch_decode(new, skip_special_tokens=True)
    assert len(texts) == 2
    assert all(isinstance(text, str) for text in texts)


def test_concurrent_builds_build_once(tmp_path, monkeypatch):
    """Two notebooks starting at once: one builds, the other waits and reuses the build."""
    import threading
    import time

    calls = []

    def slow_build(spec, out):
        calls.append(spec)
        time.sleep(0.3)
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(tiny, "_build", slow_build)
    out = tmp_path / "model"
    threads = [threading.Thread(target=tiny.make_tiny, args=(SPEC, out)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert (out / "config.json").is_file()


def test_a_copying_batch_repeats_random_tokens_and_labels_the_repeat():
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    prefix = torch.tensor([[7, 8, 9]])
    for _ in range(20):
        ids, labels = tiny._copy_batch(rng, gen, 50, prefix, 4)
        assert (ids[:, :3] == prefix).all()
        rest = ids[:, 3:]
        # x, noise, x: the sequence ends with its own start again.
        for length in range(6, 31):
            gap = rest.shape[1] - 2 * length
            if 0 <= gap <= 10 and torch.equal(rest[:, :length], rest[:, length + gap :]):
                break
        else:
            raise AssertionError("no repeated block")
        scored = (labels != -100).sum(dim=1)
        assert (scored == length - 1).all()  # the repeat but its first token: unpredictable
        assert torch.equal(labels[:, -(length - 1) :], ids[:, -(length - 1) :])
        assert ids.max() < 50


def test_copying_pretraining_runs_both_phases_within_their_limits():
    spec = dataclasses.replace(
        tiny.SPECS["prices"], copy_steps=4, copy_context_steps=3, copy_batch=2,
        copy_context_batch=2,
    )  # fmt: skip
    tokenizer = tiny.build_tokenizer(spec)  # trained on the price task's text
    assert "Prices" in tokenizer.get_vocab()
    processor = tiny.build_processor(tokenizer)
    model = tiny.build_model(spec, tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    phases = tiny.pretrain_copying(model, processor, spec, progress=False)
    # No phase got its loss under 1 nat this fast: both ran to their limits.
    assert [len(losses) for losses in phases] == [4, 3]
    assert all(loss > 1 for losses in phases for loss in losses)
    assert not model.training
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())

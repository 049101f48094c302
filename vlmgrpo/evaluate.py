"""Greedy evaluation on the held-out split, and the article's single-example test step."""

from __future__ import annotations

import time

import torch
from accelerate.utils import gather_object
from PIL import Image

from vlmgrpo.presets import Preset
from vlmgrpo.prompts import SYSTEM_PROMPT, build_conversation
from vlmgrpo.rewards import accuracy_reward, extract_answer, format_reward
from vlmgrpo.tasks import get_task
from vlmgrpo.utils import distributed_state, progress_bar


def _prompt_texts(
    processor, problems: list[str], system_prompt: str, prefixes: list[str] | None = None
) -> list[str]:
    conversations = [build_conversation(p, system_prompt) for p in problems]
    prefixes = prefixes or [""] * len(problems)
    return [
        processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + prefix
        for c, prefix in zip(conversations, prefixes, strict=True)
    ]


# Greedy decoding, whatever the model's generation_config says: hub models ship sampling
# settings (Qwen2.5-VL-3B-Instruct: temperature 0.1, top-p 0.001, repetition penalty 1.05)
# that `generate` would otherwise merge in. These are transformers' neutral values.
GREEDY = {
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "typical_p": 1.0,
    "min_p": None,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "length_penalty": 1.0,
}


@torch.no_grad()
def generate(
    model,
    processor,
    images: list[Image.Image],
    problems: list[str],
    max_new_tokens: int,
    system_prompt: str = SYSTEM_PROMPT,
    prefixes: list[str] | None = None,
) -> tuple[list[str], list[int]]:
    """Greedy completions for a batch; decodes only the new tokens, never the prompt.

    `prefixes` are forced starts of the answers (an intervention on the reasoning): each is
    appended to its prompt, and the model continues it.
    """
    tokenizer = processor.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation appends right
    try:
        batch = processor(
            text=_prompt_texts(processor, problems, system_prompt, prefixes),
            images=images,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
    finally:
        tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    out = model.generate(**batch, **GREEDY, max_new_tokens=max_new_tokens)
    model.train(was_training)
    new = out[:, batch["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    pad = tokenizer.pad_token_id
    lengths = [int((row != pad).sum()) for row in new]
    return texts, lengths


def evaluate(
    model,
    processor,
    dataset,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "evaluate",
    prefixes: list[str] | None = None,
    targets: list[str] | None = None,
) -> dict:
    """Accuracy and format rate of greedy answers on `dataset` (image, problem, solution).

    `prefixes`, one per row, are forced starts of the completions (`generate`); the records
    hold each completion with its prefix. `targets`, one per row, replace the solutions the
    answers are scored against (a price planted in the reasoning, say).
    """
    records = []
    for start in progress_bar(range(0, len(dataset), batch_size), desc=desc, disable=not progress):
        rows = dataset[start : start + batch_size]
        if targets:
            rows["solution"] = targets[start : start + batch_size]
        forced = prefixes[start : start + batch_size] if prefixes else None
        texts, _ = generate(
            model, processor, rows["image"], rows["problem"], max_new_tokens, prefixes=forced
        )
        if forced:
            texts = [prefix + text for prefix, text in zip(forced, texts, strict=True)]
        # The problem lists a multiple-choice question's options: the reward reads them.
        accuracy = accuracy_reward(texts, rows["solution"], problem=rows["problem"])
        formats = format_reward(texts)
        for text, sol, acc, fmt in zip(texts, rows["solution"], accuracy, formats, strict=True):
            records.append({"completion": text, "solution": sol, "accuracy": acc, "format": fmt})
    return summarize(records)


def intervene(
    model,
    processor,
    dataset,
    prefixes: list[str],
    targets: list[str],
    max_new_tokens: int,
    batch_size: int = 16,
) -> dict:
    """Force each answer to start with its prefix; how often does the answer then say target?

    The prefixes plant a claim in the reasoning (`<think>I see one blue`), the targets are what
    it claims. `follow` is the share of answers the accuracy reward scores right against their
    target, as eval.json's `follow_*` on the price task; `accuracy` the share still right
    against the solution. Each record holds the completion (with its prefix), its `answer`,
    `solution` and `target`.
    """
    forced = evaluate(
        model, processor, dataset, max_new_tokens, batch_size, False, "intervene", prefixes,
        targets,
    )  # fmt: skip
    texts = [r["completion"] for r in forced["records"]]
    right = accuracy_reward(texts, dataset["solution"], problem=dataset["problem"])
    records = [
        {"completion": text, "answer": extract_answer(text), "solution": sol, "target": target}
        for text, sol, target in zip(texts, dataset["solution"], targets, strict=True)
    ]
    return {
        "follow": forced["accuracy"],
        "accuracy": sum(right) / max(1, len(right)),
        "n": len(records),
        "records": records,
    }


def summarize(records: list[dict]) -> dict:
    """Accuracy and format rate over scored records (those `evaluate` returns, or several sets)."""
    scored = [r["accuracy"] for r in records if r["accuracy"] is not None]
    return {
        "accuracy": sum(scored) / max(1, len(scored)),
        "format": sum(r["format"] for r in records) / max(1, len(records)),
        "n": len(records),
        "records": records,
    }


def generate_with_reasoning(
    model, processor, image: Image.Image, problem: str, max_new_tokens: int = 512
) -> dict:
    """The article's test step: one answer with its reasoning, the seconds and tokens it took."""
    start = time.perf_counter()
    texts, lengths = generate(model, processor, [image], [problem], max_new_tokens)
    return {"text": texts[0], "seconds": time.perf_counter() - start, "tokens": lengths[0]}


def evaluate_shared(
    model,
    processor,
    dataset,
    preset: Preset,
    progress: bool = True,
    desc: str = "evaluate",
    prefixes: list[str] | None = None,
    targets: list[str] | None = None,
) -> dict:
    """`evaluate` with `dataset` split between the processes; each gets the whole result.

    Every process must call it. With one process it is `evaluate`.
    """
    state = distributed_state()
    with state.split_between_processes(list(range(len(dataset)))) as mine:
        part = evaluate(
            model,
            processor,
            dataset.select(mine),
            preset.eval_max_new_tokens,
            preset.eval_batch_size,
            progress and state.is_main_process,
            desc,
            [prefixes[i] for i in mine] if prefixes else None,
            [targets[i] for i in mine] if targets else None,
        )
    # Shards are contiguous and gathered in process order: the records keep the dataset's.
    return summarize(gather_object(part["records"]))


def task_measures(
    model,
    processor,
    test_set,
    preset: Preset,
    scores: dict,
    when: str | None = None,
    progress: bool = True,
) -> dict:
    """The synthetic task's measures of the reasoning, named for `when` ("before"/"after").

    On the colour task the agreement of answer and think (`agreement_before`); on the price
    task right thinks, answers after a planted think and with none (`vlmgrpo.prices`).
    `scores` are `evaluate_shared`'s; `when` None leaves the names bare (`agreement`). Every
    process must call it.
    """
    if not scores["records"]:  # nothing was evaluated (eval_rows=0)
        return {}

    def score(prefixes, targets, desc):
        desc = f"{desc} ({when})" if when else desc
        return evaluate_shared(
            model, processor, test_set, preset, progress, desc, prefixes, targets
        )

    found = get_task(preset.task).measures(score, test_set, scores)
    return {f"{name}_{when}" if when else name: value for name, value in found.items()}


# The scores of a run that evaluates nothing (eval_rows=0): eval.json says so with nulls.
NOT_EVALUATED = {"accuracy": None, "format": None, "n": 0, "records": []}

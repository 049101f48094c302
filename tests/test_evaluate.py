"""vlmgrpo.evaluate: greedy answers scored, forced starts, other targets, the tasks' measures."""

from __future__ import annotations

from dataclasses import replace

import torch

from vlmgrpo import colours, data, models, presets
from vlmgrpo.evaluate import (
    GREEDY,
    evaluate,
    generate,
    generate_with_reasoning,
    intervene,
    task_measures,
)
from vlmgrpo.rewards import accuracy_reward, extract_answer

FAST = replace(presets.PRESETS["tiny"], n_train=16, n_test=8, eval_batch_size=8)


def test_evaluate_decodes_only_the_completion(tiny_model_dir):
    model, processor = models.load_model(tiny_model_dir, FAST)
    _, test_set = data.load_data(FAST, None, seed=0)
    result = evaluate(model, processor, test_set, max_new_tokens=24, progress=False)
    assert result["n"] == len(test_set)
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["format"] <= 1.0
    for record in result["records"]:
        assert "conversation between User" not in record["completion"]
        assert "<|im_start|>" not in record["completion"]
    row = test_set[0]
    answer = generate_with_reasoning(model, processor, row["image"], row["problem"], 24)
    assert isinstance(answer["text"], str) and answer["seconds"] > 0
    assert 0 < answer["tokens"] <= 24


def test_intervene_forces_the_prefix_and_scores_the_answer(tiny_model_dir):
    model, processor = models.load_model(tiny_model_dir, FAST)
    _, test_set = data.load_data(FAST, None, seed=0)
    rows = test_set.select(range(6))
    forced = [colours.opposite(s) for s in rows["solution"]]
    prefixes = [colours.forced_think(h) for h in forced]
    result = intervene(model, processor, rows, prefixes, forced, 24, batch_size=4)
    assert result["n"] == 6
    for record, prefix in zip(result["records"], prefixes, strict=True):
        assert record["completion"].startswith(prefix)
        assert record["answer"] == extract_answer(record["completion"])
    # Scored by the accuracy reward, as `evaluate` scores: against the target, and the solution.
    texts = [r["completion"] for r in result["records"]]
    assert [r["target"] for r in result["records"]] == forced
    assert [r["solution"] for r in result["records"]] == rows["solution"]
    assert result["follow"] == sum(accuracy_reward(texts, forced)) / 6
    assert result["accuracy"] == sum(accuracy_reward(texts, rows["solution"])) / 6
    scored = evaluate(model, processor, rows, 24, 4, False, prefixes=prefixes, targets=forced)
    assert result["follow"] == scored["accuracy"]
    # Without prefixes, generate gives what evaluate scores (nothing forced by default).
    texts, _ = generate(model, processor, rows["image"][:2], rows["problem"][:2], 24)
    forced_texts, _ = generate(
        model, processor, rows["image"][:2], rows["problem"][:2], 24, prefixes=["", ""]
    )
    assert texts == forced_texts


def test_evaluate_continues_forced_starts_and_scores_against_targets(tiny_model_dir):
    model, processor = models.load_model(tiny_model_dir, FAST)
    _, test_set = data.load_data(FAST, None, seed=0)
    rows = test_set.select(range(4))
    prefixes = [colours.forced_think(h) for h in rows["solution"]]
    plain = evaluate(model, processor, rows, 24, batch_size=4, progress=False)
    forced = evaluate(model, processor, rows, 24, 4, False, prefixes=prefixes)
    for record, prefix in zip(forced["records"], prefixes, strict=True):
        assert record["completion"].startswith(prefix)  # the records hold the whole text
    # Scored against other targets, the same answers get the targets' verdicts.
    answers = [extract_answer(r["completion"]) for r in plain["records"]]
    targets = [a or "none" for a in answers[:2]] + ["nothing", "nothing"]
    rescored = evaluate(model, processor, rows, 24, 4, False, targets=targets)
    assert [r["accuracy"] for r in rescored["records"]] == [1.0, 1.0, 0.0, 0.0]
    assert [r["completion"] for r in rescored["records"]] == [
        r["completion"] for r in plain["records"]
    ]


def test_task_measures_name_what_each_task_measures_of_the_reasoning():
    colour = presets.get_preset("tiny")
    scores = {"records": [{"completion": colours.completion("red")}]}
    assert task_measures(None, None, None, colour, scores, "before") == {"agreement_before": 1.0}
    wrong = "<think>I see one red circle.</think><answer>blue</answer>"
    assert task_measures(None, None, None, colour, {"records": [{"completion": wrong}]},
                               "after") == {"agreement_after": 0.0}  # fmt: skip
    # Nothing evaluated (eval_rows=0): nothing measured.
    assert task_measures(None, None, None, colour, {"records": []}, "after") == {}


def test_greedy_evaluation_ignores_the_model_generation_config(tiny_model_dir):
    """Hub models ship sampling settings; evaluation must decode greedily regardless."""
    preset = presets.get_preset("tiny")
    model, processor = models.load_model(tiny_model_dir, preset)
    _, test_set = data.load_data(replace(preset, n_train=1, n_test=6), None, seed=3)
    rows = test_set[:6]
    clean, _ = generate(model, processor, rows["image"], rows["problem"], 24)
    # Qwen2.5-VL-3B-Instruct's generation_config.json, plus a penalty strong enough to show.
    config = model.generation_config
    config.do_sample, config.temperature, config.top_p, config.top_k = True, 0.1, 0.001, 1
    config.repetition_penalty = 3.0
    leaky, _ = generate(model, processor, rows["image"], rows["problem"], 24)
    assert leaky == clean
    # The same settings do change what `generate` returns when they are not overridden.
    torch.manual_seed(0)
    inputs = processor(
        text=[
            processor.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
            for c in rows["prompt"]
        ],
        images=rows["image"],
        padding=True,
        return_tensors="pt",
    )
    raw = model.generate(**inputs, max_new_tokens=24)
    raw_texts = processor.tokenizer.batch_decode(
        raw[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert raw_texts != clean
    assert GREEDY["do_sample"] is False and GREEDY["repetition_penalty"] == 1.0

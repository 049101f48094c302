"""Training through TRL's GRPOTrainer, in the style of TRL's own tests."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from types import SimpleNamespace

import datasets
import pytest
import torch
from transformers.utils import logging as hf_logging
from trl import GRPOTrainer

from tests.fixtures import make_fixture_dataset
from vlmgrpo import data, models, presets, runs, synthetic, train
from vlmgrpo.cli import main
from vlmgrpo.evaluate import evaluate, generate, generate_with_reasoning, intervene
from vlmgrpo.rewards import accuracy_reward, extract_answer, format_reward
from vlmgrpo.utils import UsageError

FAST = replace(
    presets.PRESETS["tiny"],
    n_train=16,
    n_test=8,
    num_generations=2,
    batch_size=4,
    max_steps=3,
    save_steps=2,
    eval_batch_size=8,
)


def test_lora_changes_adapter_not_base(tiny_model_dir, tmp_path):
    model, processor = models.load_model(tiny_model_dir, FAST)
    train_set, _ = data.load_data(FAST, None, seed=0)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[format_reward, accuracy_reward],
        args=replace_report(train.grpo_config(FAST, tmp_path)),
        train_dataset=train_set,
        processing_class=processor,
        peft_config=train.lora_config(FAST),
    )
    before = {n: p.clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    lora = [n for n in before if "lora_" in n]
    assert lora, "no LoRA parameters were attached"
    for name, param in trainer.model.named_parameters():
        changed = not torch.equal(param, before[name])
        if "lora_B" in name:  # lora_A may keep its init when B starts at zero; B must move
            assert changed, f"{name} did not change"
        elif "lora_" not in name:
            assert not changed, f"base weight {name} changed"
    # LoRA sits on the language model only, as vLLM requires.
    assert all("language_model" in n for n in lora)


def replace_report(args):
    args.report_to = []
    return args


def test_article_preset_has_the_article_values():
    preset = presets.get_preset("qwen2.5-vl-3b")
    assert preset.model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert preset.dataset == "lmms-lab/multimodal-open-r1-8k-verified"
    assert (preset.fraction, preset.test_size) == (0.05, 0.2)
    lora = train.lora_config(preset)
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 32, 0.1)
    assert set(lora.target_modules) == {"q_proj", "v_proj"}
    args = train.grpo_config(preset, "unused")
    assert args.learning_rate == 1e-5
    assert args.num_generations == 2
    assert args.per_device_train_batch_size == 2
    assert args.max_completion_length == 1024
    assert args.num_train_epochs == 1
    assert args.bf16 == (models.compute_dtype(preset) == torch.bfloat16)
    assert args.push_to_hub is False
    assert args.remove_unused_columns is False
    assert "tensorboard" in args.report_to
    assert not hasattr(args, "max_prompt_length")  # gone in TRL 1.16; images are capped instead
    assert preset.max_pixels <= 1024 * 28 * 28


def test_unknown_preset_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown preset 'nope'; choose one of: tiny"):
        presets.get_preset("nope")


def test_metrics_csv_keeps_each_step_once_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    callback = runs.RunLog(path)
    state = SimpleNamespace(global_step=0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 6):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 0.1 * step, "reward": step})
    callback.on_log(None, state, None, logs={"train_loss": 1.0})  # the summary: not a step
    # A crash after step 5, resumed from the checkpoint of step 3.
    resumed = runs.RunLog(path)
    state.global_step = 3
    resumed.on_train_begin(None, state, None)
    for step in range(4, 7):
        state.global_step = step
        resumed.on_log(None, state, None, logs={"loss": 0.5, "reward": 1.0})
    steps = [int(r["step"]) for r in csv.DictReader(path.open())]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("lines", [True, False])
def test_the_log_prints_step_lines_unless_a_panel_draws_the_steps(tmp_path, lines):
    written = []
    callback = runs.RunLog(tmp_path / "metrics.csv", progress=True, lines=lines)
    state = SimpleNamespace(global_step=0, max_steps=20)
    callback.on_train_begin(None, state, None)
    callback.bar.write = written.append  # what the bar would print above itself
    for step in range(1, 21):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 0.1, "rewards/a/mean": 0.5})
    callback.on_train_end(None, state, None)
    assert len(written) == (11 if lines else 0), written  # steps 1, 3, 5, ..., 19 and 20
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 20


def test_a_live_panel_turns_the_step_lines_off(tiny_model_dir, tmp_path):
    from vlmgrpo import plots

    preset = replace(presets.get_preset("tiny"), model=tiny_model_dir, max_steps=1)
    train_set, _ = data.load_data(preset, None, seed=0)
    for callbacks, lines in (([], True), ([plots.TrainingPanel()], False)):
        model, processor = models.load_model(tiny_model_dir, preset)
        trainer = train.build_trainer(
            preset, model, processor, train_set, tmp_path, progress=False, callbacks=callbacks
        )
        log = next(c for c in trainer.callback_handler.callbacks if isinstance(c, runs.RunLog))
        assert log.lines is lines


def test_cli_trains_a_local_model_on_a_local_dataset(tiny_model_dir, tmp_path):
    """The GPU path, offline: a saved model folder and a parquet file in the real schema."""
    data = tmp_path / "data.parquet"
    make_fixture_dataset(20).to_parquet(str(data))
    out = tmp_path / "run"
    argv = ["train", "--model", tiny_model_dir, "--dataset", str(data), "--max-steps", "2"]
    assert main([*argv, "--output-dir", str(out), "--quiet"]) == 0
    result = json.loads((out / "eval.json").read_text())
    for key in ("accuracy_before", "accuracy_after", "format_before", "format_after"):
        assert 0.0 <= result[key] <= 1.0
    assert result["steps"] == 2 and result["train_seconds"] > 0
    assert result["n_eval"] == 4  # the 80/20 split of 20 rows
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    for column in ("rewards/format_reward/mean", "rewards/accuracy_reward/mean", "reward_std"):
        assert column in rows[0]
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "reward_curve.png").stat().st_size > 0
    assert list(out.glob("checkpoint-*"))
    assert list((out / "runs").rglob("events.out.tfevents.*"))


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
    forced = [synthetic.opposite(s) for s in rows["solution"]]
    prefixes = [synthetic.forced_think(h) for h in forced]
    result = intervene(model, processor, rows, prefixes, forced, 24, batch_size=4)
    assert result["n"] == 6
    for record, prefix in zip(result["records"], prefixes, strict=True):
        assert record["completion"].startswith(prefix)
        assert record["answer"] == extract_answer(record["completion"])
    answers = [r["answer"] for r in result["records"]]
    assert result["follow"] == sum(a == t for a, t in zip(answers, forced, strict=True)) / 6
    assert (
        result["accuracy"]
        == sum(a == s for a, s in zip(answers, rows["solution"], strict=True)) / 6
    )
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
    prefixes = [synthetic.forced_think(h) for h in rows["solution"]]
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
    scores = {"records": [{"completion": synthetic.completion("red")}]}
    assert train.task_measures(None, None, None, colour, scores, "before") == {
        "agreement_before": 1.0
    }
    wrong = "<think>I see one red circle.</think><answer>blue</answer>"
    assert train.task_measures(None, None, None, colour, {"records": [{"completion": wrong}]},
                               "after") == {"agreement_after": 0.0}  # fmt: skip
    # Nothing evaluated (eval_rows=0): nothing measured.
    assert train.task_measures(None, None, None, colour, {"records": []}, "after") == {}


def count_evaluations(monkeypatch) -> list[str]:
    """The `desc` of every evaluation `train.run` makes from now on ("evaluate before", ...)."""
    descs, evaluate_shared = [], train.evaluate_shared

    def counted(*args, **kwargs):
        descs.append(args[5])
        return evaluate_shared(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate_shared", counted)
    return descs


def test_resume_continues_from_the_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    base = ["train", "--model", tiny_model_dir, "--output-dir", str(out), "--quiet"]
    assert main([*base, "--max-steps", "2"]) == 0
    assert (out / "checkpoint-2").is_dir()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    first = json.loads((out / "eval.json").read_text())
    assert main([*base, "--max-steps", "4"]) == 2  # refuses to mix runs without --resume
    evaluations = count_evaluations(monkeypatch)
    assert main([*base, "--max-steps", "4", "--resume"]) == 0
    steps = [int(r["step"]) for r in csv.DictReader((out / "metrics.csv").open())]
    assert steps == [1, 2, 3, 4]
    result = json.loads((out / "eval.json").read_text())
    assert result["steps"] == 4
    assert len(rows) == 2
    # The base model is not scored again: its answers are in eval_before.json.
    assert evaluations == ["evaluate after"]
    assert result["accuracy_before"] == first["accuracy_before"]
    assert result["agreement_before"] == first["agreement_before"]
    stored = json.loads((out / "eval_before.json").read_text())
    assert stored["n"] == result["n_eval"] == len(stored["records"]) == 120


def test_eval_rows_scores_the_first_rows_and_0_none(tiny_model_dir, tmp_path, capsys, monkeypatch):
    dataset = tmp_path / "data.parquet"
    make_fixture_dataset(40).to_parquet(str(dataset))  # 8 held out
    base = ["train", "--model", tiny_model_dir, "--dataset", str(dataset), "--quiet"]
    base += ["--max-steps", "1", "--batch-size", "4", "--num-generations", "2"]
    assert main([*base, "--output-dir", str(tmp_path / "three"), "--eval-rows", "3"]) == 0
    assert json.loads((tmp_path / "three" / "eval.json").read_text())["n_eval"] == 3
    capsys.readouterr()

    def evaluate(*argv):
        assert main(["evaluate", "--adapter", str(tmp_path / "three"), *argv]) == 0
        return json.loads(capsys.readouterr().out)

    assert evaluate()["n"] == 8 and evaluate("--eval-rows", "5")["n"] == 5
    assert evaluate("--eval-rows", "0") == {"accuracy": None, "format": None, "n": 0}
    evaluations = count_evaluations(monkeypatch)
    assert main([*base, "--output-dir", str(tmp_path / "none"), "--eval-rows", "0"]) == 0
    assert evaluations == []
    result = json.loads((tmp_path / "none" / "eval.json").read_text())
    assert result["n_eval"] == 0 and result["steps"] == 1
    for key in ("accuracy_before", "accuracy_after", "format_before", "format_after"):
        assert result[key] is None, key
    assert not (tmp_path / "none" / "eval_before.json").exists()


def test_a_quiet_run_draws_no_progress_bar(tiny_model_dir, tmp_path, capfd):
    """progress=False: no bar from data preparation, weight loading, evaluation or training."""
    dataset = tmp_path / "data.parquet"
    make_fixture_dataset(20).to_parquet(str(dataset))
    capfd.readouterr()
    train.run(
        FAST,
        model=tiny_model_dir,
        dataset=str(dataset),
        output_dir=tmp_path / "run",
        progress=False,
        max_steps=1,
    )
    out, err = capfd.readouterr()
    for stream in (out, err):
        assert not re.search(r"\d+%\||it/s|s/it|/s\]|step 1/1", stream), stream[-2000:]
    # The libraries' own switches are as they were: a bar drawn after the run shows.
    assert datasets.is_progress_bar_enabled() and hf_logging.is_progress_bar_enabled()

"""Training through TRL's GRPOTrainer, in the style of TRL's own tests."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import datasets
import pytest
import torch
from transformers.utils import logging as hf_logging
from trl import GRPOTrainer

from tests.fixtures import make_fixture_dataset
from vlmgrpo import data, models, presets, runs, train
from vlmgrpo import evaluate as evaluate_module
from vlmgrpo.cli import main
from vlmgrpo.rewards import accuracy_reward, format_reward
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


def count_evaluations(monkeypatch) -> list[str]:
    """The `desc` of every evaluation `train.run` makes from now on ("evaluate before", ...)."""
    descs, evaluate_shared = [], evaluate_module.evaluate_shared

    def counted(*args, **kwargs):
        descs.append(args[5])
        return evaluate_shared(*args, **kwargs)

    # train calls it for the scores, evaluate.task_measures for the task's measures
    monkeypatch.setattr(train, "evaluate_shared", counted)
    monkeypatch.setattr(evaluate_module, "evaluate_shared", counted)
    return descs


def test_resume_continues_from_the_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    base = ["train", "--model", tiny_model_dir, "--output-dir", str(out), "--quiet"]
    # Small steps and the first 8 held-out rows: the steps and the scores are not under test.
    base += ["--batch-size", "4", "--num-generations", "2", "--eval-rows", "8"]
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
    assert stored["n"] == result["n_eval"] == len(stored["records"]) == 8


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

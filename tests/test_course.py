"""vlmgrpo.course: the notebooks' one switch and its overrides, and their run folders."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vlmgrpo import course, presets
from vlmgrpo.utils import UsageError


def test_notebook_preset_is_one_switch(monkeypatch):
    for var in ("VLMGRPO_PRESET", *course.NOTEBOOK_OVERRIDES):
        monkeypatch.delenv(var, raising=False)
    assert course.notebook_preset().name == "tiny"
    monkeypatch.setenv("VLMGRPO_PRESET", "qwen2.5-vl-3b")
    assert course.notebook_preset() is presets.PRESETS["qwen2.5-vl-3b"]
    assert course.notebook_run_name("nb04", course.notebook_preset()) == "nb04-qwen2.5-vl-3b"
    monkeypatch.setenv("VLMGRPO_PRESET", "qwen-3b")
    with pytest.raises(UsageError, match=r"VLMGRPO_PRESET='qwen-3b' is not a preset.*tiny"):
        course.notebook_preset()


def test_notebook_preset_takes_a_local_model_and_dataset_and_a_short_run(
    tiny_qwen3vl_dir, article_file, monkeypatch
):
    """As --model, --dataset, --max-steps and --eval-rows do for `vlmgrpo train`."""
    settings = {
        "VLMGRPO_PRESET": "qwen2.5-vl-3b-24gb",
        "VLMGRPO_MODEL": tiny_qwen3vl_dir,
        "VLMGRPO_DATASET": str(article_file),
        "VLMGRPO_MAX_STEPS": "3",
        "VLMGRPO_EVAL_ROWS": "2",
    }
    for var, value in settings.items():
        monkeypatch.setenv(var, value)
    preset = course.notebook_preset()
    assert preset.name == "qwen2.5-vl-3b-24gb"
    assert (preset.model, preset.dataset) == (tiny_qwen3vl_dir, str(article_file))
    assert preset.family == "qwen3-vl"  # the model's own family sizes its images
    assert preset.max_pixels == 128 * 32 * 32
    assert (preset.max_steps, preset.eval_rows) == (3, 2)
    assert preset.save_steps == 3  # a short run still checkpoints its last step
    assert preset.num_generations == 4 and preset.max_completion_length == 512  # the preset's
    # A run of its own, which notebook 04 cannot take for the preset's full run.
    name = course.notebook_run_name("nb04", preset)
    assert name == f"nb04-qwen2.5-vl-3b-24gb-{Path(tiny_qwen3vl_dir).name}-article-3steps-eval2"
    article = presets.PRESETS["qwen2.5-vl-3b"]
    local_copy = replace(article, model="/data/Qwen2.5-VL-3B-Instruct/", max_steps=5)
    expected = "nb04-qwen2.5-vl-3b-Qwen2.5-VL-3B-Instruct-5steps"  # the docstring's example
    assert course.notebook_run_name("nb04", local_copy) == expected


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("VLMGRPO_MODEL", "/no/such/model", "VLMGRPO_MODEL: model /no/such/model is neither an"),
        ("VLMGRPO_MODEL", "{tmp}", "VLMGRPO_MODEL: model folder {tmp} holds no config.json"),
        ("VLMGRPO_DATASET", "/no/data.parquet", "VLMGRPO_DATASET: dataset path /no/data.parquet"),
        ("VLMGRPO_MAX_STEPS", "0", "VLMGRPO_MAX_STEPS='0' must be a whole number of 1 or more"),
        ("VLMGRPO_MAX_STEPS", "ten", "VLMGRPO_MAX_STEPS='ten' must be a whole number"),
        ("VLMGRPO_EVAL_ROWS", "0", "VLMGRPO_EVAL_ROWS='0' must be a whole number of 1 or more"),
    ],
    ids=["no-model", "not-a-model", "no-dataset", "zero-steps", "words", "zero-rows"],
)
def test_notebook_overrides_fail_in_one_line(var, value, message, tmp_path, monkeypatch):
    monkeypatch.setenv("VLMGRPO_PRESET", "qwen2.5-vl-3b")
    monkeypatch.setenv(var, value.format(tmp=tmp_path))  # tmp_path: a folder, not a model
    with pytest.raises(UsageError) as caught:
        course.notebook_preset()
    assert message.format(tmp=tmp_path) in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_load_run_gives_back_what_the_run_trained_and_scored(tiny_model_dir, tmp_path):
    """The notebooks' and `vlmgrpo evaluate --adapter`'s path: run.json, adapter, held-out rows."""
    from safetensors.torch import load_file

    from vlmgrpo import train

    short = replace(presets.PRESETS["tiny"], n_train=8, n_test=8, batch_size=4, num_generations=2)
    out = tmp_path / "run"
    result = train.run(
        short, model=tiny_model_dir, output_dir=out, max_steps=1, eval_rows=3, progress=False
    )
    loaded = course.load_run(out)
    assert loaded.result == json.loads((out / "eval.json").read_text())
    assert loaded.seed == result["seed"] and loaded.preset.model == tiny_model_dir
    assert len(loaded.test_set) == result["n_eval"] == 3  # the rows the run scored
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    weights = {n.replace(".default", ""): p for n, p in loaded.model.named_parameters()}
    assert saved and all(torch.equal(weights[n], value) for n, value in saved.items())
    assert not loaded.model.training

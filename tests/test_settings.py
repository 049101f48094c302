"""vlmgrpo.settings: a run's settings decided once, for training, the CLI and the notebooks."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import needs_bitsandbytes
from vlmgrpo import presets
from vlmgrpo.settings import resolve
from vlmgrpo.utils import UsageError


def test_changes_apply_and_none_keeps_the_presets_value():
    preset = resolve("tiny", max_steps=7, learning_rate=None, num_processes=1)
    assert preset.max_steps == 7 and preset.save_steps == 7  # a short run saves its last step
    assert preset.learning_rate == presets.PRESETS["tiny"].learning_rate
    assert resolve(presets.PRESETS["tiny"], num_processes=1) == presets.PRESETS["tiny"]


def test_the_family_is_the_models_own(tiny_qwen3vl_dir):
    preset = resolve("qwen2.5-vl-3b-24gb", model=tiny_qwen3vl_dir, num_processes=1)
    assert preset.model == tiny_qwen3vl_dir
    assert preset.family == "qwen3-vl"  # 32 px per image token, not the preset's 28
    assert preset.max_pixels == preset.max_image_tokens * 32 * 32


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_generations": 1}, "--num-generations must be at least 2"),
        ({"num_generations": 5}, "does not divide the generation batch"),
        ({"dataset": "/no/such/data.parquet"}, "dataset path /no/such/data.parquet"),
        ({"model": "/no/such/model"}, "model /no/such/model is neither an existing folder"),
        ({"quantization": "int3"}, "unknown quantization 'int3'"),
    ],
)
def test_a_bad_setting_is_one_line_before_anything_loads(changes, message):
    with pytest.raises(UsageError) as caught:
        resolve("tiny", num_processes=1, **changes)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_finished_runs_settings_skip_the_training_checks():
    """Evaluating or generating never depends on what only training needs (group sizes)."""
    with pytest.raises(UsageError):
        resolve("tiny", num_generations=5, num_processes=1)
    assert resolve("tiny", num_generations=5, training=False).num_generations == 5
    with pytest.raises(UsageError, match="dataset path"):  # a path is checked either way
        resolve("tiny", dataset="/no/such/data.parquet", training=False)


@needs_bitsandbytes
def test_a_4bit_preset_needs_bitsandbytes_to_resolve(monkeypatch, tiny_qwen3vl_dir):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(UsageError, match=r"needs bitsandbytes"):
        resolve("qwen3-vl-4b-qlora", model=tiny_qwen3vl_dir, training=False)


@pytest.mark.parametrize(
    ("field", "value", "start"),
    [
        ("dataset", "/no/data.parquet", "--dataset: dataset path /no/data.parquet"),
        ("model", "/no/such/model", "--model: model /no/such/model is neither"),
    ],
)
def test_an_error_names_the_flag_that_set_the_source(field, value, start):
    with pytest.raises(UsageError) as caught:
        resolve("tiny", names={field: f"--{field}"}, **{field: value})
    assert str(caught.value).startswith(start)
    with pytest.raises(UsageError) as caught:  # no name given: the message as it is
        resolve("tiny", **{field: value})
    assert str(caught.value).startswith(start.split(": ", 1)[1])

"""The presets rehearsed as a renter runs them, on the CPU: train -> evaluate -> generate.

Only the model (a tiny one of the preset's family: the tiny Qwen2.5-VL for the Qwen2.5-VL
presets, a tiny Qwen3-VL for the Qwen3-VL ones) and the data
(a file in the real dataset's schema) are swapped; each preset keeps its own numbers:
logging interval, lengths, batch, generations, LoRA targets, image tokens.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tests.fixtures import make_fixture_dataset
from vlmgrpo import data, models, presets, prices, train
from vlmgrpo.cli import build_parser, main
from vlmgrpo.utils import UsageError


def in_process(capfd):
    """`vlmgrpo ARGV` through `vlmgrpo.cli.main` in this process: the same code, no fresh
    torch and TRL import; what it printed, as `cli` returns it."""

    def run(*argv: str) -> SimpleNamespace:
        capfd.readouterr()
        code = main(list(argv))
        out, err = capfd.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


# The stand-in of each family: fixtures of tests/conftest.py.
STAND_IN = {"qwen2.5-vl": "tiny_model_dir", "qwen3-vl": "tiny_qwen3vl_dir"}


# The presets' commands run through `vlmgrpo.cli.main` in this process: the same code, one
# torch and TRL import. The renter's fresh processes (`python -m vlmgrpo train`, `evaluate`,
# `generate`) are rehearsed once per model family by `benchmarks/gpu_check.py`
# (tests/test_gpu_check.py: qwen2.5-vl-3b, and qwen3-vl-4b-qlora, whose 4-bit training and
# reloaded adapter tests/test_models.py also checks in this process).
@pytest.mark.parametrize(
    ("name", "steps"),
    [("tiny", 2), ("qwen2.5-vl-3b", 1), ("qwen2.5-vl-3b-24gb", 3), ("qwen3-vl-2b", 1)],
    ids=["tiny", "3b", "3b-24gb", "qwen3-2b"],
)
def test_preset_rehearsal_train_evaluate_generate(
    name, steps, article_file, tmp_path, request, capfd
):
    preset = presets.get_preset(name)
    stand_in = request.getfixturevalue(STAND_IN[preset.family])
    vlmgrpo = in_process(capfd)
    assert steps < preset.logging_steps or name == "tiny"  # the smoke run that used to crash
    out = tmp_path / "run"
    done = vlmgrpo(
        "train", "--preset", name, "--model", stand_in, "--dataset", str(article_file),
        "--max-steps", str(steps), "--output-dir", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, stream[-3000:]
    gpu_note = [line for line in done.stderr.splitlines() if "no CUDA GPU found" in line]
    assert len(gpu_note) == (name in presets.GPU_PRESETS and not torch.cuda.is_available())
    # One short line per logged step, not Trainer's log dict.
    lines = [line for line in done.stdout.splitlines() if line.startswith("step ")]
    assert lines[0].startswith(f"step 1/{steps} | format ") and "s/step" in lines[0]
    assert lines[-1].startswith(f"step {steps}/{steps} ")
    assert "{'loss'" not in done.stdout

    # The run folder is complete, and holds the preset's own numbers.
    result = json.loads((out / "eval.json").read_text())
    assert result["steps"] == steps and result["preset"] == name
    assert result["n_eval"] == (80 if name == "tiny" else 4)  # fraction 1.0 vs the 5 % slice
    config = result["config"]
    for key in (
        "logging_steps",
        "max_completion_length",
        "num_generations",
        "batch_size",
        "family",
        "max_image_tokens",
        "quantization",
    ):
        assert config[key] == getattr(preset, key), key
    assert config["max_steps"] == steps
    for key in ("accuracy_before", "accuracy_after", "format_before", "format_after"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["train_seconds"] > 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert int(rows[0]["step"]) == 1 and int(rows[-1]["step"]) == steps
    for column in ("rewards/format_reward/mean", "rewards/accuracy_reward/mean", "reward_std"):
        assert column in rows[0], column
    assert (out / "reward_curve.png").stat().st_size > 0
    assert (out / "adapter" / "adapter_config.json").exists()
    assert list(out.glob("checkpoint-*"))
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == preset.lora_r
    record = json.loads((out / "run.json").read_text())
    assert record["model"] == str(Path(stand_in).resolve())
    assert record["dataset"] == str(article_file.resolve()) and record["seed"] == 42
    dtype = models.dtype_name(models.compute_dtype(preset))  # float32 without CUDA
    assert record["dtype"] == result["dtype"] == dtype

    # evaluate and generate need nothing but the run folder.
    scored = vlmgrpo("evaluate", "--adapter", str(out))
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "Traceback" not in scored.stderr
    report = json.loads(scored.stdout)
    assert report["n"] == result["n_eval"]
    assert report["accuracy"] == pytest.approx(result["accuracy_after"])
    image = tmp_path / "shape.png"
    Image.new("RGB", (64, 48), "teal").save(image)
    answer = vlmgrpo(
        "generate", "--adapter", str(out), "--image", str(image), "--problem", "Area?"
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert json.loads(answer.stdout)["tokens"] > 0


def test_tiny_reasoning_rehearsal_measures_the_reasoning(tiny_reasoning_dir, tmp_path, capfd):
    """The price task's preset: its own data, and eval.json's measures of the reasoning."""
    vlmgrpo = in_process(capfd)
    out = tmp_path / "run"
    done = vlmgrpo(
        "train", "--preset", "tiny-reasoning", "--model", tiny_reasoning_dir,
        "--max-steps", "2", "--output-dir", str(out), "--eval-rows", "12",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream, stream[-3000:]
    result = json.loads((out / "eval.json").read_text())
    assert result["dataset"] == "synthetic-prices" and result["n_eval"] == 12
    for when in ("before", "after"):
        for measure in ("think_right", "follow", "accuracy_no_think"):
            assert 0.0 <= result[f"{measure}_{when}"] <= 1.0, (measure, when)
    assert "agreement_before" not in result  # the colour task's measure
    stored = json.loads((out / "eval_before.json").read_text())
    assert stored["measures"]["follow_before"] == result["follow_before"]
    assert json.loads((out / "run.json").read_text())["config"]["task"] == "prices"

    scored = vlmgrpo("evaluate", "--adapter", str(out))
    assert scored.returncode == 0, scored.stderr[-3000:]
    report = json.loads(scored.stdout)
    assert report["accuracy"] == pytest.approx(result["accuracy_after"])
    assert report["think_right"] == pytest.approx(result["think_right_after"])
    assert report["follow"] == pytest.approx(result["follow_after"])
    assert report["accuracy_no_think"] == pytest.approx(result["accuracy_no_think_after"])
    image = tmp_path / "shape.png"
    Image.new("RGB", (84, 84), (220, 40, 40)).save(image)
    problem = prices.problem({"red": 7, "blue": 4, "green": 1, "yellow": 9, "orange": 2})
    answer = vlmgrpo(
        "generate", "--adapter", str(out), "--image", str(image), "--problem", problem
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    assert json.loads(answer.stdout)["text"].startswith("<think>")


@pytest.fixture(scope="module")
def short_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A 1-step tiny run on a fixture file, for the run-folder tests."""
    folder = tmp_path_factory.mktemp("short")
    dataset = folder / "data.parquet"
    make_fixture_dataset(20).to_parquet(str(dataset))
    argv = ["train", "--model", tiny_model_dir, "--dataset", str(dataset), "--max-steps", "1"]
    assert main([*argv, "--output-dir", str(folder / "run"), "--quiet", "--batch-size", "8"]) == 0
    return folder / "run"


def test_evaluate_reads_the_run_folder_and_flags_override_it(short_run, tmp_path, capsys):
    def evaluate(*argv):
        capsys.readouterr()
        assert main(["evaluate", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    assert evaluate("--adapter", str(short_run))["n"] == 4  # 20 rows, 80/20
    assert evaluate("--adapter", str(short_run / "adapter"))["n"] == 4
    assert evaluate("--adapter", str(short_run / "checkpoint-1"))["n"] == 4
    other = tmp_path / "other.parquet"
    make_fixture_dataset(40).to_parquet(str(other))
    assert evaluate("--adapter", str(short_run), "--dataset", str(other))["n"] == 8


def test_a_folder_that_is_not_a_run_gets_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    capsys.readouterr()
    assert main(["evaluate", "--adapter", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a run folder (no run.json)" in err


def test_inference_model_goes_to_the_best_device_in_the_run_dtype(short_run, monkeypatch):
    from vlmgrpo import cli as cli_module

    asked = []

    def best_device():
        asked.append(True)
        return torch.device("cpu")

    monkeypatch.setattr(models, "get_device", best_device)  # what `models.load_trained` asks
    args = build_parser().parse_args(["evaluate", "--adapter", str(short_run)])
    setting = cli_module._setting(args)
    model, _ = cli_module._load_for_inference(args, setting)
    assert asked and next(model.parameters()).device.type == "cpu"
    # The precision `models.compute_dtype` gives (tests/test_models.py covers each card).
    assert next(model.parameters()).dtype == models.compute_dtype(setting[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_inference_model_is_on_the_gpu_in_half_precision(tiny_model_dir, tmp_path):
    from vlmgrpo import cli as cli_module

    args = build_parser().parse_args(
        ["evaluate", "--preset", "qwen2.5-vl-3b", "--model", tiny_model_dir]
    )
    model, _ = cli_module._load_for_inference(args, cli_module._setting(args))
    parameter = next(model.parameters())
    half = torch.bfloat16 if torch.cuda.is_bf16_supported(False) else torch.float16
    assert parameter.device.type == "cuda" and parameter.dtype == half


def test_train_flags_show_each_preset_default_and_reach_the_config(tmp_path):
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    text = train_parser.format_help()
    for flag in (
        "--max-completion-length",
        "--fraction",
        "--num-train-epochs",
        "--gradient-accumulation-steps",
        "--beta",
        "--loss-type",
        "--vllm-gpu-memory-utilization",
    ):
        assert flag in text
    compact = " ".join(text.split())
    assert "tiny: 32, tiny-reasoning: 24, qwen2.5-vl-3b: 1024, qwen2.5-vl-3b-24gb: 512" in compact
    presets_named = "tiny, tiny-reasoning, qwen2.5-vl-3b, qwen2.5-vl-3b-24gb, qwen3-vl-2b"
    assert f"one of: {presets_named}, qwen3-vl-4b-qlora" in compact
    assert "qwen2.5-vl-3b: 0.3, qwen2.5-vl-3b-24gb: 0.45" in compact
    # TRL 1.16's own advice for a vLLM server; `trl vllm-serve` is deprecated there.
    assert "VLLM_SERVER_DEV_MODE=1 vllm serve MODEL" in compact and "--max-logprobs -1" in compact
    assert "trl vllm-serve" not in compact
    args = parser.parse_args(
        ["train", "--preset", "qwen2.5-vl-3b", "--max-completion-length", "256"]
        + ["--fraction", "0.1", "--num-train-epochs", "2", "--gradient-accumulation-steps", "4"]
        + ["--beta", "0.04", "--loss-type", "dr_grpo", "--vllm-gpu-memory-utilization", "0.5"]
    )
    from vlmgrpo.cli import TRAIN_SETTINGS

    settings = {name: getattr(args, name) for _, name, _, _ in TRAIN_SETTINGS}
    preset = presets.apply_settings(presets.get_preset(args.preset), **settings)
    config = train.grpo_config(preset, tmp_path)
    assert config.max_completion_length == 256 and config.num_train_epochs == 2
    assert config.gradient_accumulation_steps == 4 and config.beta == 0.04
    assert config.loss_type == "dr_grpo" and config.vllm_gpu_memory_utilization == 0.5
    assert preset.fraction == 0.1
    assert preset.learning_rate == 1e-5  # what was not given keeps the preset's value


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fraction", "0"], "expected a number in (0, 1]"),
        (["--fraction", "1.5"], "expected a number in (0, 1]"),
        (["--loss-type", "ppo"], "invalid choice: 'ppo'"),
        (["--beta", "-0.1"], "--beta must be 0 or a positive number"),
        (["--num-train-epochs", "0"], "--num-train-epochs must be positive"),
        (["--vllm-gpu-memory-utilization", "1.5"], "vLLM's share of each GPU, in (0, 1]"),
        (["--max-completion-length", "0"], "expected a positive whole number"),
        (["--eval-rows", "-1"], "expected 0 or a positive whole number"),
    ],
)
def test_bad_new_flags_exit_2_with_one_line(options, message, tmp_path, capsys):
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--output-dir", str(out), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_vllm_context_and_memory_share_follow_the_preset():
    article, small = presets.get_preset("qwen2.5-vl-3b"), presets.get_preset("qwen2.5-vl-3b-24gb")
    # image tokens (+ vision start/end) + prompt text + completion, rounded up to 256
    assert article.vllm_max_model_length == 2048  # 258 + 512 + 1024 = 1794
    assert small.vllm_max_model_length == 1280  # 130 + 512 + 512 = 1154
    for name in ("qwen3-vl-2b", "qwen3-vl-4b-qlora"):  # 256 tokens of 32 x 32 px: 258 again
        assert presets.get_preset(name).vllm_max_model_length == 2048
    config = train.grpo_config(small, "unused")
    assert config.vllm_max_model_length == 1280
    # The 24 GB card: vLLM's share must hold the bf16 weights (7.5 GB) and a step's KV cache
    # (36 KiB per token), which TRL's default share of 0.3 (7.2 GB) cannot.
    weights, kv_per_token = 7.5e9, 2 * 36 * 2 * 128 * 2
    share = small.vllm_gpu_memory_utilization * 24e9
    assert 0.3 * 24e9 < weights < share - kv_per_token * 1280 * small.num_generations - 2e9


def test_no_deprecation_warning_from_our_config():
    for preset in presets.PRESETS.values():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            args = train.grpo_config(preset, "unused")
        assert not [w for w in caught if issubclass(w.category, FutureWarning)]
        # 5.24 mirrors activation_checkpointing into the old name; 5.17 has only the old one.
        assert args.gradient_checkpointing == preset.activation_checkpointing


@pytest.mark.parametrize(
    ("size", "kept"),
    [((2000, 10), True), ((4000, 10), False), ((20_000, 20), False), ((10, 3000), False)],
    ids=["200:1", "400:1", "thin-after-cap", "tall"],
)
def test_images_beyond_qwens_aspect_ratio_are_skipped_and_counted(size, kept, capsys):
    rows = make_fixture_dataset(3).to_list()
    rows[1]["image"] = Image.new("RGB", size, "white")
    dataset = make_fixture_dataset(3).from_list(rows, features=make_fixture_dataset(1).features)
    prepared = data.prepare_dataset(dataset, max_pixels=256 * 28 * 28)
    err = capsys.readouterr().err
    assert len(prepared) == (3 if kept else 2)
    assert ("1 with an image beyond 200:1" in err) == (not kept)
    for image in prepared["image"]:  # what is kept, Qwen's processor accepts
        data.check_aspect_ratio(image)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": 0.2, "epsilon_high": 0.1}, "epsilon_high must be at least"),
        ({"num_iterations": 0}, "num_iterations"),
    ],
)
def test_clip_and_iteration_settings_are_checked(change, message):
    with pytest.raises(UsageError, match=message):
        presets.check_preset(replace(presets.PRESETS["tiny"], **change), num_processes=1)


def test_lab_settings_reach_grpo_config(tmp_path):
    gspo = replace(
        presets.PRESETS["tiny"],
        importance_sampling_level="sequence",
        epsilon=3e-4,
        epsilon_high=4e-4,
        num_iterations=2,
    )
    args = train.grpo_config(gspo, tmp_path)
    assert (args.epsilon, args.epsilon_high, args.num_iterations) == (3e-4, 4e-4, 2)
    assert args.importance_sampling_level == "sequence"

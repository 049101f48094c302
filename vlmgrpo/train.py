"""Presets -> GRPOConfig -> TRL's GRPOTrainer with LoRA, and the run folder it leaves.

Two presets share one code path (`run`), so the CPU default and the article's GPU recipe
differ only in numbers:

* ``tiny`` (default): the offline tiny Qwen2.5-VL (`vlmgrpo.tiny`) on the synthetic colour
  task (`vlmgrpo.synthetic`), on a CPU in minutes.
* ``qwen2.5-vl-3b``: the article's recipe, Qwen/Qwen2.5-VL-3B-Instruct on
  lmms-lab/multimodal-open-r1-8k-verified (first 5 %, 80/20 split, seed 42), LoRA r=8,
  alpha=32, dropout 0.1 on q_proj/v_proj, learning rate 1e-5, 2 generations per prompt,
  batch 2, 1024 completion tokens, bf16, one epoch. Corrected for TRL 1.16: prompts are
  conversational, there is no ``max_prompt_length`` (image size is capped instead, so no
  image token is ever cut), and nothing is pushed to the hub unless asked::

      vlmgrpo train --preset qwen2.5-vl-3b

A run folder holds ``metrics.csv`` (one row per logging step), TensorBoard events under
``runs/``, ``checkpoint-*``, the final LoRA ``adapter/``, ``reward_curve.png`` and
``eval.json`` (accuracy and format rate before and after GRPO).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from vlmgrpo import data, synthetic, tiny
from vlmgrpo.evaluate import evaluate
from vlmgrpo.rewards import accuracy_reward, format_reward
from vlmgrpo.utils import UsageError, seed_everything

# LoRA on every linear layer of the language model, none in the vision tower.
LM_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# What `run` and the Trainer write into a run folder; --overwrite deletes nothing else.
_RUN_ENTRIES = re.compile(
    r"metrics\.csv|metrics\.tmp|eval\.json|reward_curve\.png|README\.md|adapter|runs"
    r"|checkpoint-\d+"
)


@dataclass(frozen=True)
class Preset:
    """Everything a run needs besides its output folder and seed."""

    name: str
    model: str | None = None  # hub id or folder; None builds the tiny model
    dataset: str | None = None  # hub id or path; None generates the synthetic task
    fraction: float = 0.05
    test_size: float = 0.2
    n_train: int = 2000  # synthetic task only
    n_test: int = 120  # synthetic task only
    max_pixels: int = 256 * 28 * 28
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 1e-5
    num_generations: int = 2
    batch_size: int = 2
    grad_accum: int = 1
    max_completion_length: int = 1024
    max_steps: int = -1
    num_train_epochs: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    beta: float = 0.0
    loss_type: str = "dapo"
    importance_sampling_level: str = "token"  # "sequence" is GSPO
    scale_rewards: str = "group"
    logging_steps: int = 10
    save_steps: int = 10
    bf16: bool = False
    gradient_checkpointing: bool = False
    eval_batch_size: int = 8
    eval_max_new_tokens: int = 1024


PRESETS = {
    "tiny": Preset(
        name="tiny",
        fraction=1.0,  # a dataset passed with the tiny preset is used whole
        n_train=2000,
        n_test=120,
        max_pixels=synthetic.IMAGE_SIZE**2,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=LM_LINEAR,
        learning_rate=3e-3,
        num_generations=8,
        batch_size=48,
        # The correct completion is 16 tokens long; leave room without paying for much more.
        max_completion_length=24,
        max_steps=80,
        # Sampling from the whole vocabulary lets a tiny model spell junk; top-k keeps the
        # group's answers among the plausible ones.
        top_k=5,
        logging_steps=1,
        save_steps=20,
        eval_batch_size=40,
        eval_max_new_tokens=24,
    ),
    "qwen2.5-vl-3b": Preset(
        name="qwen2.5-vl-3b",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        dataset="lmms-lab/multimodal-open-r1-8k-verified",
        bf16=True,
    ),
}


def get_preset(name: str) -> Preset:
    """The named preset, or a one-line error listing the known ones."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def check_preset(preset: Preset) -> None:
    """Raise a one-line UsageError for settings TRL would reject (or train badly on)."""
    if preset.num_generations < 2:
        raise UsageError(
            f"--num-generations must be at least 2 (GRPO compares completions within a group), "
            f"got {preset.num_generations}"
        )
    if preset.batch_size < 1 or preset.grad_accum < 1:
        raise UsageError(
            f"batch size and gradient accumulation must be positive, got {preset.batch_size} "
            f"and {preset.grad_accum}"
        )
    # TRL 1.16's generation batch (one process): per-device batch x gradient accumulation
    # steps; it must hold whole groups of num_generations completions.
    generation_batch = preset.batch_size * preset.grad_accum
    if generation_batch % preset.num_generations:
        raise UsageError(
            f"--num-generations {preset.num_generations} does not divide the generation batch "
            f"of {generation_batch} completions (batch size {preset.batch_size} x gradient "
            f"accumulation {preset.grad_accum}); pick a divisor of {generation_batch} or change "
            "--batch-size"
        )
    if not (math.isfinite(preset.learning_rate) and preset.learning_rate > 0):
        raise UsageError(
            f"--learning-rate must be a positive number, got {preset.learning_rate}; "
            "LoRA runs use about 1e-5 to 1e-3"
        )
    if preset.max_steps == 0 or preset.max_steps < -1:
        raise UsageError(f"--max-steps must be positive, got {preset.max_steps}")
    if preset.save_steps < 1:
        raise UsageError(f"--save-steps must be positive, got {preset.save_steps}")


def load_model(source: str | None, preset: Preset, trust_remote_code: bool = False):
    """Model and processor from a hub id or folder (`None`: the tiny model, built if needed).

    `trust_remote_code` runs Python shipped with a hub model; off unless the user asks.
    """
    if source is None:
        source = str(tiny.make_tiny())
    elif not Path(source).exists() and (
        source.startswith((".", "/", "~")) or source.count("/") != 1
    ):
        raise UsageError(
            f"model {source} is neither an existing folder nor a hub id like owner/name"
        )
    dtype = torch.bfloat16 if preset.bf16 else torch.float32
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code
        )
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise UsageError(
            f"cannot load model {source} ({str(err).splitlines()[0][:160]}); pass a local "
            "folder saved with save_pretrained, or check the hub id and your network "
            "(`hf auth login` for gated models)"
        ) from err
    processor.tokenizer.padding_side = "left"
    return model, processor


def load_data(preset: Preset, source: str | None, seed: int):
    """(train, test) in the conversational form TRL wants: synthetic, or a real dataset."""
    if source is None:
        train = synthetic.make_colour_dataset(preset.n_train, seed=seed)
        test = synthetic.make_colour_dataset(preset.n_test, seed=seed + 10_000)
        return (data.prepare_dataset(d, preset.max_pixels) for d in (train, test))
    return data.load_splits(
        source, fraction=preset.fraction, test_size=preset.test_size, max_pixels=preset.max_pixels
    )


def lora_config(preset: Preset) -> LoraConfig:
    """The preset's LoRA adapter settings."""
    return LoraConfig(
        r=preset.lora_r,
        lora_alpha=preset.lora_alpha,
        lora_dropout=preset.lora_dropout,
        target_modules=preset.target_modules,
        task_type="CAUSAL_LM",
    )


def grpo_config(preset: Preset, output_dir: str | Path, seed: int = 42) -> GRPOConfig:
    """The preset's GRPOConfig: TRL 1.16's defaults (beta 0, "dapo") unless it says otherwise."""
    cuda = torch.cuda.is_available()
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=preset.learning_rate,
        num_generations=preset.num_generations,
        per_device_train_batch_size=preset.batch_size,
        gradient_accumulation_steps=preset.grad_accum,
        max_completion_length=preset.max_completion_length,
        max_steps=preset.max_steps,
        num_train_epochs=preset.num_train_epochs,
        temperature=preset.temperature,
        top_k=preset.top_k,
        beta=preset.beta,
        loss_type=preset.loss_type,
        importance_sampling_level=preset.importance_sampling_level,
        scale_rewards=preset.scale_rewards,
        logging_steps=preset.logging_steps,
        save_strategy="steps",
        save_steps=preset.save_steps,
        bf16=preset.bf16 and cuda,
        gradient_checkpointing=preset.gradient_checkpointing,
        remove_unused_columns=False,  # the rewards read the `solution` column
        report_to=["tensorboard"],
        push_to_hub=False,
        seed=seed,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


class MetricsCallback(TrainerCallback):
    """Appends every training log to metrics.csv, with the seconds per step since the last one.

    On resume, rows past the checkpoint's step are dropped first, so each step appears once.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] | None = None
        self._tick = time.perf_counter()
        self._step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        rows = _read_csv(self.path)
        # A run killed mid-write can leave a torn last row: short rows have None cells.
        kept = [r for r in rows if None not in r.values() and int(r["step"]) <= state.global_step]
        if rows:
            self.columns = list(rows[0])
            _write_csv(self.path, self.columns, kept)
        self._tick, self._step = time.perf_counter(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # the final summary log has train_loss instead
            return
        now = time.perf_counter()
        steps = max(1, state.global_step - self._step)
        row = {"step": state.global_step, **logs, "step_seconds": (now - self._tick) / steps}
        self._tick, self._step = now, state.global_step
        if self.columns is None:
            self.columns = list(row)
            _write_csv(self.path, self.columns, [])
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _check_output(output_dir: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; pass one of them")
    entries = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if entries and not (resume or overwrite):
        raise UsageError(
            f"output folder {output_dir} already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --output-dir"
        )
    foreign = [name for name in entries if not _RUN_ENTRIES.fullmatch(name)]
    if overwrite and foreign:  # a mistyped --output-dir must not delete someone's folder
        raise UsageError(
            f"--overwrite would delete {output_dir}, which holds {foreign[0]!r}, not written by "
            "`vlmgrpo train`; choose another --output-dir"
        )


def _make_output(output_dir: Path, overwrite: bool) -> None:
    if overwrite and output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` in `output_dir`, or None; incomplete ones are named.

    The Trainer writes a checkpoint in place, trainer_state.json last, so a run killed while
    saving leaves a folder without it (or with it cut short): resuming from that would fail.
    """
    found = sorted(
        (int(m[1]), p)
        for p in Path(output_dir).glob("checkpoint-*")
        if (m := _CHECKPOINT.fullmatch(p.name)) and p.is_dir()
    )
    incomplete = []
    for _, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            incomplete.append(path.name)
            continue
        if incomplete:
            print(
                f"ignoring incomplete {', '.join(incomplete)} (interrupted while saving); "
                f"resuming from {path.name}",
                file=sys.stderr,
            )
        return path
    if incomplete:
        print(f"no complete checkpoint in {output_dir}; starting from step 0", file=sys.stderr)
    return None


def run(
    preset: str | Preset = "tiny",
    *,
    model: str | None = None,
    dataset: str | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    num_generations: int | None = None,
    batch_size: int | None = None,
    save_steps: int | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 42,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> dict:
    """Train with GRPO + LoRA and write the run folder; returns what eval.json holds.

    The keyword settings left at None keep the preset's values.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    overrides = {
        "learning_rate": learning_rate,
        "num_generations": num_generations,
        "batch_size": batch_size,
        "save_steps": save_steps,
        "max_steps": max_steps,
    }
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    if max_steps is not None:
        if max_steps <= 0:
            raise UsageError(f"--max-steps must be positive, got {max_steps}")
        preset = replace(preset, save_steps=min(preset.save_steps, max_steps))
    # Before anything is loaded or written: a bad setting should cost no time and no folder.
    check_preset(preset)
    output_dir = Path(output_dir or Path("runs") / preset.name)
    _check_output(output_dir, resume, overwrite)
    seed_everything(seed)
    # Data first: its errors are the likelier ones, and cheaper to hit before a model loads.
    train_set, test_set = load_data(preset, dataset or preset.dataset, seed)
    base, processor = load_model(model or preset.model, preset, trust_remote_code)
    # Only now touch the folder: a run that fails to start leaves nothing behind.
    _make_output(output_dir, overwrite)
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"

    before = evaluate(
        base,
        processor,
        test_set,
        preset.eval_max_new_tokens,
        preset.eval_batch_size,
        progress,
        "evaluate before",
    )
    args = grpo_config(preset, output_dir, seed)
    args.disable_tqdm = not progress
    trainer = GRPOTrainer(
        model=base,
        reward_funcs=[format_reward, accuracy_reward],
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(preset),
        callbacks=[MetricsCallback(output_dir / "metrics.csv")],
    )
    checkpoint = latest_checkpoint(output_dir) if resume else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - start
    trainer.model.save_pretrained(output_dir / "adapter")
    processor.save_pretrained(output_dir / "adapter")

    after = evaluate(
        trainer.model,
        processor,
        test_set,
        preset.eval_max_new_tokens,
        preset.eval_batch_size,
        progress,
        "evaluate after",
    )
    result = {
        "accuracy_before": before["accuracy"],
        "accuracy_after": after["accuracy"],
        "format_before": before["format"],
        "format_after": after["format"],
        "train_seconds": round(train_seconds, 1),
        "steps": trainer.state.global_step,
        "n_eval": after["n"],
        "preset": preset.name,
        "model": model or preset.model or "tiny",
        "dataset": dataset or preset.dataset or "synthetic-colour",
        "seed": seed,
        "config": {k: v for k, v in asdict(preset).items() if k != "name"},
    }
    (output_dir / "eval.json").write_text(json.dumps(result, indent=2))
    from vlmgrpo.plots import plot_reward_curve

    plot_reward_curve(output_dir / "metrics.csv", output_dir / "reward_curve.png")
    return result

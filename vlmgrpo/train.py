"""Presets -> GRPOConfig -> TRL's GRPOTrainer with LoRA, and the run folder it leaves.

The presets (`vlmgrpo.presets`) share one code path (`run`), so the CPU default and the
article's GPU recipe differ only in numbers.

The same command runs on several GPUs under ``accelerate launch`` (configs in ``configs/``):
every process trains and evaluates its share of the held-out split; only the main process
writes the run folder and prints. ``--use-vllm`` generates with vLLM (the vLLM install
profile, see the README), colocated on the training GPUs unless ``--vllm-mode server`` is
given.

A run folder holds ``run.json`` (what the run was started with: model, dataset, preset,
seed, settings; `vlmgrpo evaluate/generate --adapter DIR` read it), ``metrics.csv`` (one row
per logging step, the last step always included), TensorBoard events under ``runs/``,
``checkpoint-*``, the final LoRA ``adapter/``, ``reward_curve.png`` and ``eval.json``
(accuracy and format rate before and after GRPO).
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
from dataclasses import asdict, fields, replace
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, parse_flag_from_env
from peft import LoraConfig
from peft.tuners.tuners_utils import check_target_module_exists
from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer
from trl.import_utils import is_vllm_available
from trl.models import unwrap_model_for_generation

from vlmgrpo import data, synthetic, tiny
from vlmgrpo.evaluate import evaluate, summarize
from vlmgrpo.presets import (  # noqa: F401  (re-exported: the recipes used to live here)
    GPU_PRESETS,
    LM_LINEAR,
    LOSS_TYPES,
    PRESETS,
    Preset,
    get_preset,
    notebook_preset,
)
from vlmgrpo.rewards import accuracy_reward, format_reward
from vlmgrpo.utils import UsageError, progress_bar, seed_everything

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# What `run` and the Trainer write into a run folder; --overwrite deletes nothing else.
_RUN_ENTRIES = re.compile(
    r"metrics\.csv|metrics\.tmp|eval\.json|run\.json|reward_curve\.png|README\.md|adapter|runs"
    r"|checkpoint-\d+"
)
# transformers 5.24 names it `activation_checkpointing` (`gradient_checkpointing` is a deprecated
# alias there, a FutureWarning); 5.17, the vLLM profile's, knows only `gradient_checkpointing`.
CHECKPOINTING = next(
    (f.name for f in fields(GRPOConfig) if f.name == "activation_checkpointing"),
    "gradient_checkpointing",
)
RUN_FILE = "run.json"  # what a run was started with: evaluate/generate read it back


def distributed_state() -> PartialState:
    """This process's place among those `accelerate launch` started (alone without it)."""
    # Without cpu=True on a machine with no GPU, accelerate finds no backend and reports one
    # process even when `accelerate launch` started several. This call may create the process
    # group, so it gets the Trainer's own default timeout (ddp_timeout, 30 min): the others
    # wait up to that long while the main process downloads or builds the model.
    cpu = not torch.cuda.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU")
    return PartialState(cpu=cpu, timeout=timedelta(minutes=30))


def check_preset(preset: Preset, num_processes: int | None = None) -> None:
    """Raise a one-line UsageError for settings TRL would reject (or train badly on).

    `num_processes` defaults to the number `accelerate launch` started (1 without it).
    """
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
    if num_processes is None:
        num_processes = distributed_state().num_processes
    # TRL 1.16's generation batch: per-device batch x processes x gradient accumulation steps;
    # it must hold whole groups of num_generations completions.
    generation_batch = preset.batch_size * num_processes * preset.grad_accum
    if generation_batch % preset.num_generations:
        raise UsageError(
            f"--num-generations {preset.num_generations} does not divide the generation batch "
            f"of {generation_batch} completions (batch size {preset.batch_size} x "
            f"{num_processes} process(es) x gradient accumulation {preset.grad_accum}); pick a "
            f"divisor of {generation_batch} or change --batch-size"
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
    if not 0 < preset.fraction <= 1:
        raise UsageError(f"--fraction must be in (0, 1], got {preset.fraction}; 0.05 is 5 %")
    if not (math.isfinite(preset.num_train_epochs) and preset.num_train_epochs > 0):
        raise UsageError(f"--num-train-epochs must be positive, got {preset.num_train_epochs}")
    if preset.max_completion_length < 1:
        raise UsageError(
            f"--max-completion-length must be positive, got {preset.max_completion_length}"
        )
    if not (math.isfinite(preset.beta) and preset.beta >= 0):
        raise UsageError(f"--beta must be 0 or a positive number, got {preset.beta}")
    if preset.loss_type not in LOSS_TYPES:
        raise UsageError(
            f"unknown --loss-type {preset.loss_type!r}; choose one of: {', '.join(LOSS_TYPES)}"
        )
    if not 0 < preset.vllm_gpu_memory_utilization <= 1:
        raise UsageError(
            "--vllm-gpu-memory-utilization is vLLM's share of each GPU, in (0, 1]; got "
            f"{preset.vllm_gpu_memory_utilization}"
        )
    if not (math.isfinite(preset.epsilon) and preset.epsilon > 0):
        raise UsageError(f"epsilon (the clip range) must be positive, got {preset.epsilon}")
    if preset.epsilon_high is not None and not preset.epsilon_high >= preset.epsilon:
        raise UsageError(
            f"epsilon_high must be at least epsilon ({preset.epsilon}), got {preset.epsilon_high}"
        )
    if preset.num_iterations < 1:
        raise UsageError(f"num_iterations must be 1 or more, got {preset.num_iterations}")
    if preset.vllm_mode not in ("colocate", "server"):
        raise UsageError(f"--vllm-mode must be colocate or server, got {preset.vllm_mode!r}")
    if preset.use_vllm and not is_vllm_available():
        raise UsageError(
            "--use-vllm needs vLLM, which is not installed; on a GPU machine install the vLLM "
            "profile (`pip install -e .[vllm] -c constraints/vllm.txt`), or train without "
            "--use-vllm"
        )


def vision_lora_targets(model, lora: LoraConfig) -> list[str]:
    """The vision-tower modules that `lora` would adapt (vLLM serves none)."""
    return [
        name
        for name, _ in model.named_modules()
        if "visual" in name.split(".") and check_target_module_exists(lora, name)
    ]


def run_dtype(preset: Preset) -> torch.dtype:
    """bf16 when the preset asks for it and a CUDA GPU is there; float32 otherwise.

    CPUs (and Apple's MPS) compute bf16 slowly or partly; the numbers of a rehearsal on the
    CPU are then those of float32, which only makes them more exact.
    """
    return torch.bfloat16 if preset.bf16 and torch.cuda.is_available() else torch.float32


def warn_if_no_gpu(preset: Preset) -> None:
    """One stderr line when a GPU preset starts without CUDA: it runs, slowly."""
    if preset.name in GPU_PRESETS and not torch.cuda.is_available():
        print(
            f"vlmgrpo: no CUDA GPU found: the {preset.name} preset runs on the CPU in float32, "
            f"which takes hours per step with the 3B model (fine for a rehearsal with a small "
            f"--model)",
            file=sys.stderr,
        )


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
    dtype = run_dtype(preset)
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
        epsilon=preset.epsilon,
        epsilon_high=preset.epsilon_high,
        num_iterations=preset.num_iterations,
        logging_first_step=True,  # a smoke run shows its first step at once
        bf16=preset.bf16 and cuda,
        **{CHECKPOINTING: preset.activation_checkpointing},
        use_vllm=preset.use_vllm,
        vllm_mode=preset.vllm_mode,
        vllm_gpu_memory_utilization=preset.vllm_gpu_memory_utilization,
        vllm_max_model_length=preset.vllm_max_model_length,
        remove_unused_columns=False,  # the rewards read the `solution` column
        report_to=["tensorboard"],
        push_to_hub=False,
        seed=seed,
        use_cpu=not cuda,
        dataloader_num_workers=0,
    )


class LogFinalStep(TrainerCallback):
    """Log the last step too, so a run shorter than its logging interval still has metrics.

    Every process needs it: logging gathers the loss across processes.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True


class RunLog(TrainerCallback):
    """Each training log: a row of metrics.csv and, with `progress`, one compact line.

    The line (step, reward per function, reward std, completion length, seconds per step)
    stays readable on a terminal over ssh, under a progress bar: the bar shows the latest one,
    and about ten of them are kept above it, one per tenth of the run, so a notebook's output
    stays short. metrics.csv and TensorBoard keep every column. On resume, rows past the
    checkpoint's step are dropped first, so each step appears once.
    """

    def __init__(self, path: str | Path, progress: bool = False):
        self.path = Path(path)
        self.progress = progress
        self.columns: list[str] | None = None
        self.bar = None
        self._tick = time.perf_counter()
        self._step = 0
        self._next_line = 0

    def on_train_begin(self, args, state, control, **kwargs):
        rows = _read_csv(self.path)
        # A run killed mid-write can leave a torn last row: short rows have None cells.
        kept = [r for r in rows if None not in r.values() and int(r["step"]) <= state.global_step]
        if rows:
            self.columns = list(rows[0])
            _write_csv(self.path, self.columns, kept)
        self._tick, self._step = time.perf_counter(), state.global_step
        if self.progress:
            self.bar = progress_bar(
                total=state.max_steps, initial=state.global_step, desc="GRPO steps"
            )
        self._next_line = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

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
        if self.bar is not None:
            line = log_line(row, state.max_steps)
            self.bar.set_postfix_str(line.split(" | ", 1)[-1], refresh=False)
            if state.global_step >= self._next_line or state.global_step >= state.max_steps:
                self.bar.write(line)
                self._next_line = state.global_step + max(1, state.max_steps // 10)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def log_line(row: dict, max_steps: int) -> str:
    """One training log as a short line: step, rewards, reward std, length, seconds per step."""
    rewards = [
        f"{key.split('/')[1].removesuffix('_reward')} {value:.2f}"
        for key, value in row.items()
        if key.startswith("rewards/") and key.endswith("/mean")
    ]
    parts = [f"step {row['step']}/{max_steps}", " ".join(rewards)]
    if "reward_std" in row:
        parts.append(f"reward std {row['reward_std']:.2f}")
    if "completions/mean_length" in row:
        parts.append(f"length {row['completions/mean_length']:.0f}")
    parts.append(f"{row['step_seconds']:.1f} s/step")
    return " | ".join(p for p in parts if p)


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


def build_trainer(
    preset: Preset,
    model,
    processor,
    train_set,
    output_dir: str | Path,
    seed: int = 42,
    progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> GRPOTrainer:
    """TRL's GRPOTrainer with the preset's GRPOConfig, LoRA adapter and the two rewards.

    The main process keeps `output_dir`/metrics.csv (every process sees every log) and, with
    `progress`, shows a progress bar with a short line per log.
    """
    args = grpo_config(preset, output_dir, seed)
    # Trainer's own bar prints every log dict (or a table in notebooks); `RunLog` has the bar
    # and a short line per log, so keep Trainer quiet.
    args.disable_tqdm = True
    log = [RunLog(Path(output_dir) / "metrics.csv", progress)]
    if not distributed_state().is_main_process:
        log = []
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[format_reward, accuracy_reward],
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(preset),
        callbacks=[LogFinalStep(), *log, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)  # it would print every log dict
    return trainer


def evaluate_shared(
    model, processor, dataset, preset: Preset, progress: bool = True, desc: str = "evaluate"
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
        )
    # Shards are contiguous and gathered in process order: the records keep the dataset's.
    return summarize(gather_object(part["records"]))


def apply_settings(preset: Preset, **settings) -> Preset:
    """`preset` with the given fields replaced; those left at None keep the preset's value."""
    names = {f.name for f in fields(Preset)} - {"name"}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise TypeError(f"not a preset setting: {', '.join(unknown)}")
    preset = replace(preset, **{k: v for k, v in settings.items() if v is not None})
    if settings.get("max_steps") is not None:
        if settings["max_steps"] <= 0:
            raise UsageError(f"--max-steps must be positive, got {settings['max_steps']}")
        # A short run still checkpoints, and logs, its last step.
        preset = replace(preset, save_steps=min(preset.save_steps, settings["max_steps"]))
    return preset


def _source(value: str | None) -> str | None:
    """A model or dataset source as a run folder records it: local paths made absolute."""
    if value is None or not Path(value).expanduser().exists():
        return value
    return str(Path(value).expanduser().resolve())


def preset_settings(preset: Preset) -> dict:
    """The preset's fields but its name, as run.json and eval.json record them."""
    return {k: v for k, v in asdict(preset).items() if k != "name"}


def write_run_file(output_dir: Path, preset: Preset, model, dataset, seed: int) -> None:
    """run.json: what `evaluate`/`generate --adapter DIR` need to rebuild the run's setting."""
    record = {
        "preset": preset.name,
        "model": _source(model),  # None: the tiny model
        "dataset": _source(dataset),  # None: the synthetic colour task
        "seed": seed,
        "config": preset_settings(preset),
    }
    (output_dir / RUN_FILE).write_text(json.dumps(record, indent=2))


def read_run_file(run_dir: str | Path) -> dict:
    """A run folder's run.json, with its settings as a `Preset` under "preset"; or UsageError.

    `run_dir` may be the run folder, its adapter/ or one of its checkpoint-N folders.
    """
    path = Path(run_dir)
    for folder in (path, path.parent):
        if (folder / RUN_FILE).is_file():
            record = json.loads((folder / RUN_FILE).read_text())
            known = {f.name for f in fields(Preset)}
            config = {k: v for k, v in record["config"].items() if k in known}
            return {**record, "preset": Preset(name=record["preset"], **config)}
    raise UsageError(
        f"{run_dir} is not a run folder (no {RUN_FILE}); pass a folder written by "
        "`vlmgrpo train`, or --adapter with --preset and --model for a bare adapter"
    )


def _agreement(dataset: str | None, before: dict, after: dict) -> dict:
    """On the colour task: how often the answer names the hue the model's own think names."""
    if dataset is not None:
        return {}
    return {
        f"agreement_{when}": synthetic.agreement([r["completion"] for r in part["records"]])
        for when, part in (("before", before), ("after", after))
    }


def run(
    preset: str | Preset = "tiny",
    *,
    model: str | None = None,
    dataset: str | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 42,
    progress: bool = True,
    trust_remote_code: bool = False,
    **settings,
) -> dict:
    """Train with GRPO + LoRA and write the run folder; returns what eval.json holds.

    `settings` are `Preset` fields (max_steps, learning_rate, beta, ...); those left at None
    keep the preset's values. Under `accelerate launch` every process trains and evaluates a
    share of the test split; only the main process writes the folder, and every process
    returns the same result.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    preset = apply_settings(preset, **settings)
    state = distributed_state()
    # Before anything is loaded or written: a bad setting should cost no time and no folder.
    check_preset(preset, state.num_processes)
    output_dir = Path(output_dir or Path("runs") / preset.name)
    _check_output(output_dir, resume, overwrite)
    if state.is_main_process:
        warn_if_no_gpu(preset)
    seed_everything(seed)
    model, dataset = model or preset.model, dataset or preset.dataset
    # The main process goes first, so the others read the tiny model (or the download) from
    # its cache instead of building it alongside. They wait for it past their folder check
    # above, so the main process may then replace the folder.
    with state.main_process_first():
        # Data first: its errors are the likelier ones, and cheaper to hit before a model loads.
        train_set, test_set = load_data(preset, dataset, seed)
        base, processor = load_model(model, preset, trust_remote_code)
    if preset.use_vllm and (vision := vision_lora_targets(base, lora_config(preset))):
        raise UsageError(
            f"--use-vllm cannot serve LoRA on the vision tower, and the preset's target_modules "
            f"reach {vision[0]}; target language-model layers only"
        )
    # Only now touch the folder: a run that fails to start leaves nothing behind.
    if state.is_main_process:
        _make_output(output_dir, overwrite)
        write_run_file(output_dir, preset, model, dataset, seed)
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"

    # On the device it will train on: evaluating a GPU run's model on the CPU takes hours.
    base.to(state.device)
    before = evaluate_shared(base, processor, test_set, preset, progress, "evaluate before")
    trainer = build_trainer(preset, base, processor, train_set, output_dir, seed, progress)
    checkpoint = latest_checkpoint(output_dir) if resume else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - start
    # The Trainer saves from the main process only (and gathers ZeRO-3 shards first).
    trainer.save_model(str(output_dir / "adapter"))
    # With ZeRO-3 every process holds a shard: this gathers the weights for generation.
    with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as trained:
        after = evaluate_shared(trained, processor, test_set, preset, progress, "evaluate after")
    result = {
        "accuracy_before": before["accuracy"],
        "accuracy_after": after["accuracy"],
        "format_before": before["format"],
        "format_after": after["format"],
        **_agreement(dataset, before, after),
        "train_seconds": round(train_seconds, 1),
        "steps": trainer.state.global_step,
        "n_eval": after["n"],
        "num_processes": trainer.accelerator.num_processes,
        "preset": preset.name,
        "model": model or "tiny",
        "dataset": dataset or "synthetic-colour",
        "seed": seed,
        "config": preset_settings(preset),
    }
    if trainer.accelerator.is_main_process:
        (output_dir / "eval.json").write_text(json.dumps(result, indent=2))
        metrics = output_dir / "metrics.csv"
        if metrics.exists():  # absent only when a finished run is resumed: no step to log
            from vlmgrpo.plots import plot_reward_curve

            plot_reward_curve(metrics, output_dir / "reward_curve.png")
    return result

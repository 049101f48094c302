"""Presets -> GRPOConfig -> TRL's GRPOTrainer with LoRA, and the run folder it leaves.

The presets share one code path (`run`), so the CPU default and the article's GPU recipe
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

* ``qwen2.5-vl-3b-24gb``: the same recipe fitted to a 24 GB card (see its comment).

The same command runs on several GPUs under ``accelerate launch`` (configs in ``configs/``):
every process trains and evaluates its share of the held-out split; only the main process
writes the run folder and prints. ``--use-vllm`` generates with vLLM (``pip install -e
.[vllm]``), colocated on the training GPUs unless ``--vllm-mode server`` is given.

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
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # vLLM shares the training GPUs; "server": `trl vllm-serve`
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
    # The article's recipe fitted to one 24 GB card (RTX 3090/4090, A5000). A reasoned guess,
    # not yet measured on such a card (`benchmarks/bench_train.py` measures it). The bf16
    # weights take 7.5 GB and LoRA's optimizer state almost nothing; what grows is activations
    # and logits, in proportion to the sequence length (image tokens + prompt + completion)
    # times the completions per step. So: images capped at 128 x 28 x 28 pixels (128 image
    # tokens), 512 completion tokens, and gradient checkpointing (TRL 1.16 then calls
    # `enable_input_require_grads` on the PEFT model itself), which leaves room for 4
    # completions per prompt instead of 2, a clearer group advantage. No 4-bit: unmeasured.
    "qwen2.5-vl-3b-24gb": Preset(
        name="qwen2.5-vl-3b-24gb",
        model="Qwen/Qwen2.5-VL-3B-Instruct",
        dataset="lmms-lab/multimodal-open-r1-8k-verified",
        max_pixels=128 * 28 * 28,
        num_generations=4,
        batch_size=4,
        max_completion_length=512,
        bf16=True,
        gradient_checkpointing=True,
        eval_batch_size=4,
        eval_max_new_tokens=512,
    ),
}


def get_preset(name: str) -> Preset:
    """The named preset, or a one-line error listing the known ones."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


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
    if preset.vllm_mode not in ("colocate", "server"):
        raise UsageError(f"--vllm-mode must be colocate or server, got {preset.vllm_mode!r}")
    if preset.use_vllm and not is_vllm_available():
        raise UsageError(
            "--use-vllm needs vLLM, which is not installed; on a GPU machine run "
            "`pip install -e .[vllm]`, or train without --use-vllm"
        )


def vision_lora_targets(model, lora: LoraConfig) -> list[str]:
    """The vision-tower modules that `lora` would adapt (vLLM serves none)."""
    return [
        name
        for name, _ in model.named_modules()
        if "visual" in name.split(".") and check_target_module_exists(lora, name)
    ]


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
        use_vllm=preset.use_vllm,
        vllm_mode=preset.vllm_mode,
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
    """TRL's GRPOTrainer with the preset's GRPOConfig, LoRA adapter and the two rewards."""
    args = grpo_config(preset, output_dir, seed)
    args.disable_tqdm = not progress
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[format_reward, accuracy_reward],
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(preset),
        callbacks=callbacks,
    )
    if not progress:  # without bars Trainer prints every log dict; metrics.csv has them all
        trainer.remove_callback(PrinterCallback)
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
    use_vllm: bool | None = None,
    vllm_mode: str | None = None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 42,
    progress: bool = True,
    trust_remote_code: bool = False,
) -> dict:
    """Train with GRPO + LoRA and write the run folder; returns what eval.json holds.

    The keyword settings left at None keep the preset's values. Under `accelerate launch`
    every process trains and evaluates a share of the test split; only the main process
    writes the folder, and every process returns the same result.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    overrides = {
        "learning_rate": learning_rate,
        "num_generations": num_generations,
        "batch_size": batch_size,
        "save_steps": save_steps,
        "max_steps": max_steps,
        "use_vllm": use_vllm,
        "vllm_mode": vllm_mode,
    }
    preset = replace(preset, **{k: v for k, v in overrides.items() if v is not None})
    if max_steps is not None:
        if max_steps <= 0:
            raise UsageError(f"--max-steps must be positive, got {max_steps}")
        preset = replace(preset, save_steps=min(preset.save_steps, max_steps))
    state = distributed_state()
    # Before anything is loaded or written: a bad setting should cost no time and no folder.
    check_preset(preset, state.num_processes)
    output_dir = Path(output_dir or Path("runs") / preset.name)
    _check_output(output_dir, resume, overwrite)
    seed_everything(seed)
    # The main process goes first, so the others read the tiny model (or the download) from
    # its cache instead of building it alongside. They wait for it past their folder check
    # above, so the main process may then replace the folder.
    with state.main_process_first():
        # Data first: its errors are the likelier ones, and cheaper to hit before a model loads.
        train_set, test_set = load_data(preset, dataset or preset.dataset, seed)
        base, processor = load_model(model or preset.model, preset, trust_remote_code)
    if preset.use_vllm and (vision := vision_lora_targets(base, lora_config(preset))):
        raise UsageError(
            f"--use-vllm cannot serve LoRA on the vision tower, and the preset's target_modules "
            f"reach {vision[0]}; target language-model layers only"
        )
    # Only now touch the folder: a run that fails to start leaves nothing behind.
    if state.is_main_process:
        _make_output(output_dir, overwrite)
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"

    # On the device it will train on: evaluating a GPU run's model on the CPU takes hours.
    base.to(state.device)
    before = evaluate_shared(base, processor, test_set, preset, progress, "evaluate before")
    # Only the main process keeps metrics.csv: every process sees every log.
    callbacks = [MetricsCallback(output_dir / "metrics.csv")] if state.is_main_process else []
    trainer = build_trainer(
        preset, base, processor, train_set, output_dir, seed, progress, callbacks
    )
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
        "train_seconds": round(train_seconds, 1),
        "steps": trainer.state.global_step,
        "n_eval": after["n"],
        "num_processes": trainer.accelerator.num_processes,
        "preset": preset.name,
        "model": model or preset.model or "tiny",
        "dataset": dataset or preset.dataset or "synthetic-colour",
        "seed": seed,
        "config": {k: v for k, v in asdict(preset).items() if k != "name"},
    }
    if trainer.accelerator.is_main_process:
        (output_dir / "eval.json").write_text(json.dumps(result, indent=2))
        from vlmgrpo.plots import plot_reward_curve

        plot_reward_curve(output_dir / "metrics.csv", output_dir / "reward_curve.png")
    return result

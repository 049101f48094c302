"""Presets -> GRPOConfig -> TRL's GRPOTrainer with LoRA: the recipe, and `run`, which follows it.

The presets (`vlmgrpo.presets`) share one code path (`run`), so the CPU default and the
article's GPU recipe differ only in numbers. `run` loads the data (`vlmgrpo.data`) and the
model (`vlmgrpo.models`), evaluates, trains and evaluates again, and leaves a run folder
(`vlmgrpo.runs`).

The same command runs on several GPUs under ``accelerate launch`` (configs in ``configs/``):
every process trains and evaluates its share of the held-out split; only the main process
writes the run folder and prints. ``--use-vllm`` generates with vLLM (the vLLM install
profile, see the README), colocated on the training GPUs unless ``--vllm-mode server`` is
given.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields
from pathlib import Path

import torch
from peft import LoraConfig
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer
from trl.models import unwrap_model_for_generation

from vlmgrpo import data, models, runs
from vlmgrpo.evaluate import NOT_EVALUATED, evaluate_shared, task_measures
from vlmgrpo.presets import Preset
from vlmgrpo.rewards import accuracy_reward, format_reward
from vlmgrpo.settings import resolve
from vlmgrpo.tasks import get_task
from vlmgrpo.utils import distributed_state, progress_bars, seed_everything

# transformers 5.24 names it `activation_checkpointing` (`gradient_checkpointing` is a deprecated
# alias there, a FutureWarning); 5.17, the vLLM profile's, knows only `gradient_checkpointing`.
CHECKPOINTING = next(
    (f.name for f in fields(GRPOConfig) if f.name == "activation_checkpointing"),
    "gradient_checkpointing",
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
    dtype = models.compute_dtype(preset)
    return GRPOConfig(
        output_dir=str(output_dir),
        learning_rate=preset.learning_rate,
        num_generations=preset.num_generations,
        per_device_train_batch_size=preset.batch_size,
        gradient_accumulation_steps=preset.gradient_accumulation_steps,
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
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
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


def build_trainer(
    preset: Preset,
    model,
    processor,
    train_set,
    output_dir: str | Path,
    seed: int = 42,
    progress: bool = True,
    callbacks: list[TrainerCallback] | None = None,
    reward_funcs: list | None = None,
) -> GRPOTrainer:
    """TRL's GRPOTrainer with the preset's GRPOConfig, LoRA adapter and rewards.

    The rewards are the format and accuracy rewards unless `reward_funcs` says otherwise.
    The main process keeps `output_dir`/metrics.csv (every process sees every log) and, with
    `progress`, shows a progress bar with a short line per log.
    """
    args = grpo_config(preset, output_dir, seed)
    # Trainer's own bar prints every log dict (or a table in notebooks); `RunLog` has the bar
    # and a short line per log, so keep Trainer quiet.
    args.disable_tqdm = True
    # A live panel (plots.TrainingPanel, `shows_steps`) draws every step: the bar alone then.
    panel = any(getattr(c, "shows_steps", False) for c in callbacks or [])
    log = [runs.RunLog(Path(output_dir) / "metrics.csv", progress, lines=not panel)]
    if not distributed_state().is_main_process:
        log = []
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs or [format_reward, accuracy_reward],
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(preset),
        callbacks=[LogFinalStep(), *log, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)  # it would print every log dict
    for callback in callbacks or []:
        if hasattr(callback, "watch"):  # a live view of the trainer (`plots.TrainingPanel`)
            callback.watch(trainer)
    return trainer


def _scores_before(
    model,
    processor,
    test_set,
    preset: Preset,
    output_dir: Path,
    resume: bool,
    progress: bool,
    synthetic: bool,
) -> dict:
    """The base model's scores: a resumed run's stored ones, else evaluated and stored.

    On a `synthetic` task they hold the task's measures of the base model ("measures").
    """
    if len(test_set) == 0:
        return NOT_EVALUATED
    if resume and (stored := runs.read_eval_before(output_dir, len(test_set), preset)):
        return stored
    scores = evaluate_shared(model, processor, test_set, preset, progress, "evaluate before")
    if synthetic:
        scores["measures"] = task_measures(
            model, processor, test_set, preset, scores, "before", progress
        )
    if distributed_state().is_main_process:
        runs.write_eval_before(output_dir, scores, preset)
    return scores


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
    callbacks: list[TrainerCallback] | None = None,
    reward_funcs: list | None = None,
    **settings,
) -> dict:
    """Train with GRPO + LoRA and write the run folder; returns what eval.json holds.

    `settings` are `Preset` fields (max_steps, learning_rate, beta, ...); those left at None
    keep the preset's values. Under `accelerate launch` every process trains and evaluates a
    share of the test split; only the main process writes the folder, and every process
    returns the same result. With `progress` False nothing draws a progress bar or prints a
    log line (data preparation, weight loading, evaluation and training alike). `callbacks`
    are more Trainer callbacks, such as `vlmgrpo.plots.TrainingPanel` in a notebook;
    `reward_funcs` replace the format and accuracy rewards (an experiment: the evaluation
    still scores format and accuracy).
    """
    state = distributed_state()
    # Before anything is loaded or written: a bad setting should cost no time and no folder.
    preset = resolve(
        preset,
        model=model,
        dataset=dataset,
        trust_remote_code=trust_remote_code,
        num_processes=state.num_processes,
        **settings,
    )
    model, dataset = preset.model, preset.dataset
    output_dir = Path(output_dir or Path("runs") / preset.name)
    runs.check_output(output_dir, resume, overwrite)
    with progress_bars(progress):
        if state.is_main_process:
            models.warn_if_no_gpu(preset)
        seed_everything(seed)
        dtype = models.dtype_name(models.compute_dtype(preset))
        # The main process goes first, so the others read the tiny model (or the download) from
        # its cache instead of building it alongside. They wait for it past their folder check
        # above, so the main process may then replace the folder.
        with state.main_process_first():
            # Data first: its errors are the likelier ones, and cheaper to hit than a model load.
            train_set, test_set = data.load_data(preset, dataset, seed)
            base, processor = models.load_model(model, preset, trust_remote_code, state.device)
        # Only now touch the folder: a run that fails to start leaves nothing behind.
        if state.is_main_process:
            runs.make_output(output_dir, overwrite)
            runs.write_run_file(output_dir, preset, model, dataset, seed, dtype)

        # On the device it will train on: evaluating a GPU run's model on the CPU takes hours.
        base.to(state.device)
        test_set = data.first_rows(test_set, preset.eval_rows)
        before = _scores_before(
            base, processor, test_set, preset, output_dir, resume, progress, dataset is None
        )
        trainer = build_trainer(
            preset, base, processor, train_set, output_dir, seed, progress, callbacks, reward_funcs
        )
        checkpoint = runs.latest_checkpoint(output_dir) if resume else None
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        train_seconds = time.perf_counter() - start
        # The Trainer saves from the main process only (and gathers ZeRO-3 shards first).
        trainer.save_model(str(output_dir / "adapter"))
        after, measured = NOT_EVALUATED, {}
        if len(test_set):
            # With ZeRO-3 every process holds a shard: this gathers the weights to generate.
            wrapped, accelerator = trainer.model_wrapped, trainer.accelerator
            with unwrap_model_for_generation(wrapped, accelerator) as trained:
                after = evaluate_shared(
                    trained, processor, test_set, preset, progress, "evaluate after"
                )
                if dataset is None:
                    measured = task_measures(
                        trained, processor, test_set, preset, after, "after", progress
                    )
        result = {
            "accuracy_before": before["accuracy"],
            "accuracy_after": after["accuracy"],
            "format_before": before["format"],
            "format_after": after["format"],
            **before.get("measures", {}),
            **measured,
            "train_seconds": round(train_seconds, 1),
            "steps": trainer.state.global_step,
            "n_eval": after["n"],
            "num_processes": trainer.accelerator.num_processes,
            "preset": preset.name,
            "model": model or "tiny",
            "dataset": dataset or get_task(preset.task).NAME,
            "seed": seed,
            "dtype": dtype,
            "config": runs.preset_settings(preset),
        }
        if trainer.accelerator.is_main_process:
            (output_dir / "eval.json").write_text(json.dumps(result, indent=2))
            metrics = output_dir / "metrics.csv"
            if metrics.exists():  # absent only when a finished run is resumed: no step to log
                from vlmgrpo.plots import plot_reward_curve

                plot_reward_curve(metrics, output_dir / "reward_curve.png")
        return result

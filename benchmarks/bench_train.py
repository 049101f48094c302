"""Speed and memory of one preset's GRPO training: one line per figure.

    python benchmarks/bench_train.py --preset tiny --steps 5 --warmup 1
    python benchmarks/bench_train.py --preset qwen2.5-vl-3b-24gb --random-weights
    python benchmarks/bench_train.py --preset qwen3-vl-4b-qlora --random-weights
    accelerate launch --config_file configs/multi_gpu.yaml --num_processes 2 \\
        benchmarks/bench_train.py --preset qwen2.5-vl-3b --random-weights

It trains through the same code as `vlmgrpo train` (`vlmgrpo.train.build_trainer`) for
--warmup steps, then times --steps more: seconds per optimizer step, completions sampled
per second, completion tokens generated per second, and the peak memory of the main process
(`torch.cuda.max_memory_allocated` over the timed steps on a GPU, the process's peak
resident memory on a CPU).

`--random-weights` needs no hub: the tiny model without its cold start, or a random model of
the preset's exact shape (`vlmgrpo.standins`: Qwen2.5-VL-3B, Qwen3-VL-2B or Qwen3-VL-4B, saved
once to the cache in bf16, 4-9 GB; quantized as it loads where the preset is 4-bit), trained
on the synthetic task with images scaled up to the preset's pixel cap. Time and memory
depend on the shapes, not the values; random weights rarely stop early, so completions run to
the length limit: the slow end of what real weights do.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import TrainerCallback

from vlmgrpo import colours, data, models, presets, standins, tiny, train, utils
from vlmgrpo.settings import resolve


class StepTimer(TrainerCallback):
    """Wall time and mean completion length of every optimizer step after the warm-up."""

    def __init__(self, warmup: int):
        self.warmup = warmup
        self.seconds: list[float] = []
        self.lengths: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        _synchronize()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _synchronize()  # CUDA runs ahead of Python; stop the clock when the GPU is done
        if state.global_step > self.warmup:
            self.seconds.append(time.perf_counter() - self._start)
        elif state.global_step == self.warmup and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()  # the peak of the timed steps only

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs and state.global_step > self.warmup:
            self.lengths.append(logs["completions/mean_length"])


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def random_model(preset: presets.Preset) -> str:
    """A folder holding a randomly initialised model of the preset's architecture."""
    if preset.model is None:
        # The tiny model's build with no cold start: random, and cached apart from the real one.
        return str(tiny.make_tiny(replace(tiny.TinySpec(), warmup_steps=0)))
    if preset.model in standins.REAL_SHAPES:
        folder = tiny.cache_root() / f"random-{standins.REAL_SHAPES[preset.model]}"
        return str(standins.random_model(preset.model, folder))
    raise SystemExit(f"no random model of {preset.model}'s shape; drop --random-weights")


def synthetic_at_cap(preset: presets.Preset, n: int, seed: int):
    """The synthetic task with every image as large as the preset's pixel cap allows."""
    token = presets.FAMILIES[preset.family].token_side  # 28 or 32 px per image token
    side = max(token, int((preset.max_pixels**0.5) // token) * token)
    images = colours.make_colour_dataset(n, seed=seed)
    images = images.map(lambda row: {"image": row["image"].resize((side, side))})
    return data.prepare_dataset(images, preset.max_pixels, token_side=token)


def image_tokens(processor, row: dict) -> int:
    """How many image tokens one training prompt's image becomes (after the pixel cap)."""
    grid = processor.image_processor(images=[row["image"]], return_tensors="pt")
    merge = processor.image_processor.merge_size
    return int(grid["image_grid_thw"].prod(dim=-1).sum()) // merge**2


def trainable(model) -> int:
    """Parameters the optimizer updates (LoRA's), counted once each."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def peak_memory() -> str:
    """The main process's peak memory, as one labelled figure."""
    if torch.cuda.is_available():
        gib = torch.cuda.max_memory_allocated() / 2**30
        return f"peak GPU memory: {gib:.2f} GiB (torch.cuda.max_memory_allocated, timed steps)"
    # ru_maxrss is in KiB on Linux, bytes on macOS; it covers the whole process, load included.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss = rss if sys.platform == "darwin" else rss * 1024
    return f"peak RSS: {rss / 2**30:.2f} GiB (whole process, loading included)"


def main() -> None:
    """Parse the arguments, train, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=list(presets.PRESETS))
    parser.add_argument("--random-weights", action="store_true", help="no hub: see above")
    parser.add_argument("--model", help="hub id or folder (default: the preset's)")
    parser.add_argument("--dataset", help="hub id or file (default: the preset's, or synthetic)")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps timed")
    parser.add_argument("--warmup", type=int, default=1, help="steps run before timing")
    parser.add_argument("--batch-size", type=int, help="completions per device and step")
    parser.add_argument("--num-generations", type=int, help="completions per prompt")
    parser.add_argument("--max-completion-length", type=int, help="tokens per completion")
    parser.add_argument("--fraction", type=float, help="share of --dataset's rows used")
    parser.add_argument("--use-vllm", action="store_true", help="generate with vLLM")
    parser.add_argument(
        "--bf16-on-cpu",
        action="store_true",
        help="with no CUDA, load and train a half-precision preset in bf16 as a GPU would, "
        "not float32: half the memory (a 3B model's step fits 24 GB)",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")

    preset = presets.get_preset(args.preset)
    if args.bf16_on_cpu and preset.half_precision and not torch.cuda.is_available():
        models.compute_dtype = lambda preset: torch.bfloat16  # what a bf16 card computes in
    total = args.warmup + args.steps
    state = utils.distributed_state()
    changes = dict(
        batch_size=args.batch_size,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        fraction=args.fraction,
        use_vllm=args.use_vllm or None,
        max_steps=total,
        save_steps=total,
        logging_steps=1,
    )
    # The settings checked before anything is built; the family once the model is there.
    presets.check_preset(presets.apply_settings(preset, **changes), state.num_processes)
    prompts = total * preset.batch_size * state.num_processes * preset.gradient_accumulation_steps
    prompts //= preset.num_generations
    start = time.perf_counter()
    with state.main_process_first():  # the main process builds or downloads, the rest read
        model_source = args.model or (random_model(preset) if args.random_weights else None)
        model_source = model_source or preset.model
        # images sized for the model's own tokens: its family, read from its config
        preset = resolve(preset, model=model_source, num_processes=state.num_processes, **changes)
        if args.dataset or not (args.random_weights or preset.dataset is None):
            train_set, _ = data.load_data(preset, args.dataset or preset.dataset, args.seed)
        else:
            train_set = synthetic_at_cap(preset, max(64, prompts), args.seed)
        model, processor = models.load_model(model_source, preset, device=state.device)
    ready = time.perf_counter() - start

    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = train.build_trainer(
            preset, model, processor, train_set, Path(tmp), args.seed, False, [timer]
        )
        trainer.train()
    if not state.is_main_process:
        return
    seconds = statistics.mean(timer.seconds)
    completions = trainer.args.generation_batch_size  # over all processes, once per step
    length = statistics.mean(timer.lengths) if timer.lengths else float("nan")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    weights = "random" if args.random_weights else "trained"
    print(f"preset: {preset.name} ({weights} weights, {model_source or preset.model or 'tiny'})")
    print(f"processes: {state.num_processes} on {device}")
    print(f"model built or fetched, and loaded: {ready:.1f} s")
    print(f"image tokens per prompt: {image_tokens(processor, train_set[0])}")
    print(f"trainable parameters: {trainable(trainer.model):,}")
    print(f"steps timed: {len(timer.seconds)} after {args.warmup} warm-up")
    print(f"seconds per step: {seconds:.3f}")
    print(f"samples per second: {completions / seconds:.2f} ({completions} completions a step)")
    print(f"generated tokens per second: {length * completions / seconds:.1f}")
    print(f"mean completion length: {length:.1f} tokens (limit {preset.max_completion_length})")
    print(peak_memory())


if __name__ == "__main__":
    main()

"""One check of the whole GPU path on a freshly rented card, with no hub access: one table.

    python benchmarks/gpu_check.py                    # or: make gpu-check
    python benchmarks/gpu_check.py --preset qwen3-vl-4b-qlora    # one preset (repeatable)
    python benchmarks/gpu_check.py --stand-in DIR --stand-in DIR2   # model folders instead

It builds random-weights models of the GPU presets' shapes (`vlmgrpo.standins`, cached in
bf16: Qwen2.5-VL-3B 7.5 GB, Qwen3-VL-2B 4.3 GB, Qwen3-VL-4B 8.9 GB; the 4-bit preset
quantizes its model as it loads) and a dataset file in the real schema (the synthetic task,
images at the largest pixel cap), then for each GPU preset runs, as separate processes,
exactly what a renter types:

1. ``vlmgrpo train --preset P --max-steps 3`` (then again with ``--use-vllm`` when vLLM is
   installed),
2. ``vlmgrpo evaluate --adapter RUN`` on 8 held-out rows,
3. ``vlmgrpo generate --adapter RUN`` on one image,
4. ``benchmarks/bench_train.py --preset P`` for seconds per step and peak memory.

Random weights rarely stop early, so every completion runs to the preset's length limit:
the slow end of what the real model does. A --stand-in folder replaces the model of every
preset of its family (read from its config: Qwen2.5-VL or Qwen3-VL). The tests run it on
the CPU with a tiny model of each family standing in, so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vlmgrpo import colours, data, models, presets, standins, tiny
from vlmgrpo.utils import UsageError

HERE = Path(__file__).resolve().parent
VLMGRPO = [sys.executable, "-m", "vlmgrpo"]
N_ROWS = 40  # with --fraction 1 and the 80/20 split: 32 to train on, 8 to evaluate
STEPS = 3
FIGURES = {
    "seconds per step": r"seconds per step: ([\d.]+)",
    "peak GiB": r"peak (?:GPU memory|RSS): ([\d.]+) GiB",
}


def vllm_installed() -> bool:
    """Whether vLLM can be imported (the vLLM install profile)."""
    from trl.import_utils import is_vllm_available

    return is_vllm_available()


def make_dataset(path: Path, seed: int = 0) -> Path:
    """The synthetic task as a parquet file in the real schema, images at the largest cap.

    Each preset's data preparation shrinks them to its own cap, as it would the real data.
    """
    side = int(max(presets.get_preset(n).max_pixels for n in presets.GPU_PRESETS) ** 0.5)
    rows = colours.make_colour_dataset(N_ROWS, seed=seed)
    rows = rows.map(lambda row: {"image": row["image"].resize((side, side))})
    data.check_columns(rows)
    rows.to_parquet(str(path))
    return path


def timed(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds and result of one command; its output is kept for the table and errors."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def failure(done: subprocess.CompletedProcess) -> str:
    """The last line a failed command printed on stderr (its error), for the table."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return f"exit {done.returncode}: {lines[-1][:100] if lines else '(no output)'}"


def check_preset(name: str, model: str, dataset: Path, work: Path, vllm: bool, env: dict):
    """train -> evaluate -> generate -> bench for one preset: a row of the table."""
    row = {"preset": name + (" + vLLM" if vllm else ""), "status": "ok"}
    run_dir = work / row["preset"].replace(" + ", "-")
    train_argv = [
        *VLMGRPO, "train", "--preset", name, "--model", model, "--dataset", str(dataset),
        "--fraction", "1", "--max-steps", str(STEPS), "--output-dir", str(run_dir), "--quiet",
    ]  # fmt: skip
    seconds, done = timed(train_argv + (["--use-vllm"] if vllm else []), env)
    row["train s"] = seconds
    if done.returncode:
        return {**row, "status": "train " + failure(done)}
    result = json.loads(done.stdout)
    row["steps"] = result["steps"]
    seconds, done = timed([*VLMGRPO, "evaluate", "--adapter", str(run_dir)], env)
    row["evaluate s"] = seconds
    if done.returncode:
        return {**row, "status": "evaluate " + failure(done)}
    row["eval rows"] = json.loads(done.stdout)["n"]
    image = work / "image.png"
    colours.draw_shape("red", random.Random(0)).save(image)
    generate_argv = [*VLMGRPO, "generate", "--adapter", str(run_dir), "--image", str(image)]
    seconds, done = timed([*generate_argv, "--problem", "What colour is the shape?"], env)
    row["generate s"] = seconds
    if done.returncode:
        return {**row, "status": "generate " + failure(done)}
    bench = [sys.executable, str(HERE / "bench_train.py"), "--preset", name, "--model", model]
    bench += ["--dataset", str(dataset), "--fraction", "1", "--steps", "2", "--warmup", "1"]
    _, done = timed(bench + (["--use-vllm"] if vllm else []), env)
    if done.returncode:
        return {**row, "status": "bench " + failure(done)}
    for figure, pattern in FIGURES.items():
        found = re.search(pattern, done.stdout)
        row[figure] = float(found[1]) if found else float("nan")
    return row


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    columns = ["preset", "steps", "train s", "seconds per step", "peak GiB"]
    columns += ["eval rows", "evaluate s", "generate s", "status"]
    cells = [
        [f"{r[c]:.1f}" if isinstance(r.get(c), float) else str(r.get(c, "-")) for c in columns]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def stand_ins(folders: list[str]) -> dict[str, str]:
    """Each --stand-in folder by its model family (read from its config)."""
    found = {}
    for folder in folders:
        family = models.model_family(folder, default="")
        if not family:
            raise UsageError(
                f"--stand-in {folder} is of no known family; pass a folder of one of: "
                f"{', '.join(presets.FAMILIES)}"
            )
        found[family] = folder
    return found


def model_for(preset: presets.Preset, standing_in: dict[str, str]) -> str:
    """The folder the preset trains here: its family's stand-in, or a model of its shape."""
    if standing_in:
        if preset.family not in standing_in:
            raise UsageError(
                f"no --stand-in of the {preset.family} family, which {preset.name} needs; "
                "pass one, or --preset to check fewer presets"
            )
        return standing_in[preset.family]
    name = standins.REAL_SHAPES[preset.model]
    print(f"building the random-weights {name} (once; cached)", flush=True)
    return str(standins.random_model(preset.model, tiny.cache_root() / f"random-{name}"))


def main(argv: list[str] | None = None) -> int:
    """Build what is needed, check each GPU preset, print the table; 1 if any row failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        action="append",
        choices=presets.GPU_PRESETS,
        help="check this preset (repeatable; default: every GPU preset)",
    )
    parser.add_argument(
        "--stand-in",
        action="append",
        default=[],
        help="model folder to use instead of the random models of its family (repeatable)",
    )
    parser.add_argument("--work-dir", help="where runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA)"
    print(f"device: {device}", flush=True)
    standing_in = stand_ins(args.stand_in)
    env = {**os.environ, "TQDM_DISABLE": "1"}  # the commands' bars, in their own processes
    variants = [False, True] if vllm_installed() else [False]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        dataset = make_dataset(work / "data.parquet")
        for name in args.preset or presets.GPU_PRESETS:
            preset = presets.get_preset(name)
            model = model_for(preset, standing_in)
            for vllm in variants:
                rows.append(check_preset(name, model, dataset, work, vllm, env))
                print(f"checked {rows[-1]['preset']}: {rows[-1]['status']}", flush=True)
    kind = "stand-ins " + ", ".join(standing_in.values()) if standing_in else "random weights"
    print(f"models: {kind}")
    print(f"vLLM: {'installed' if vllm_installed() else 'not installed (rows without it)'}")
    print(table(rows))
    print(f"total: {time.perf_counter() - start:.0f} s on {device}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as err:
        sys.exit(f"gpu_check: {err}")

"""One check of the whole GPU path on a freshly rented card, with no hub access: one table.

    python benchmarks/gpu_check.py                    # or: make gpu-check
    python benchmarks/gpu_check.py --stand-in DIR     # any model folder instead of the 3B

It builds a random-weights Qwen2.5-VL-3B (`vlmgrpo.shapes`, cached, 7.5 GB) and a dataset
file in the real schema (the synthetic task, images at the 3B preset's pixel cap), then for
each 3B preset runs, as separate processes, exactly what a renter types:

1. ``vlmgrpo train --preset P --max-steps 3`` (then again with ``--use-vllm`` when vLLM is
   installed),
2. ``vlmgrpo evaluate --adapter RUN`` on 8 held-out rows,
3. ``vlmgrpo generate --adapter RUN`` on one image,
4. ``benchmarks/bench_train.py --preset P`` for seconds per step and peak memory.

Random weights rarely stop early, so every completion runs to the preset's length limit:
the slow end of what the real model does. Within about 8 minutes on one H100-class card.
The tests run it on the CPU with the tiny model standing in, so it cannot rot.
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

from vlmgrpo import data, presets, shapes, synthetic, tiny
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
    """The synthetic task as a parquet file in the real schema, images at the 3B cap."""
    cap = presets.get_preset("qwen2.5-vl-3b").max_pixels
    side = int(cap**0.5) // 28 * 28
    rows = synthetic.make_colour_dataset(N_ROWS, seed=seed)
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
    synthetic.draw_shape("red", random.Random(0)).save(image)
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


def main(argv: list[str] | None = None) -> int:
    """Build what is needed, check each 3B preset, print the table; 1 if any row failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stand-in", help="model folder to use instead of the random 3B")
    parser.add_argument("--work-dir", help="where runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (no CUDA)"
    print(f"device: {device}", flush=True)
    if args.stand_in:
        model = args.stand_in
    else:
        print("building the random-weights Qwen2.5-VL-3B (once; cached)", flush=True)
        model = str(shapes.random_qwen25vl_3b(tiny.cache_root() / "random-qwen2.5-vl-3b"))
    env = {**os.environ, "TQDM_DISABLE": "1"}
    variants = [False, True] if vllm_installed() else [False]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        dataset = make_dataset(work / "data.parquet")
        for name in presets.GPU_PRESETS:
            for vllm in variants:
                rows.append(check_preset(name, model, dataset, work, vllm, env))
                print(f"checked {rows[-1]['preset']}: {rows[-1]['status']}", flush=True)
    print(f"model: {'stand-in ' + model if args.stand_in else 'random-weights Qwen2.5-VL-3B'}")
    print(f"vLLM: {'installed' if vllm_installed() else 'not installed (rows without it)'}")
    print(table(rows))
    print(f"total: {time.perf_counter() - start:.0f} s on {device}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as err:
        sys.exit(f"gpu_check: {err}")

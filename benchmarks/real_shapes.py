"""One GRPO step of every GPU preset at its model's real shape, random weights, on any machine.

    python benchmarks/real_shapes.py                      # or: make rehearse-shapes
    python benchmarks/real_shapes.py --preset qwen3-vl-4b-qlora   # one preset (repeatable)

Before a release, and before renting a card: the tiny stand-ins share each family's classes
but not its depth or sizes, so what only the real shapes show (Qwen2.5-VL-3B's 32-block
vision tower with window attention, Qwen3-VL's DeepStack layers, the 151,936-row vocabulary,
the image tokens at the preset's pixel cap, the LoRA targets matched against the real module
names, nf4 layers where the preset is 4-bit) is met here, on the CPU, in minutes per preset.

Each preset runs in a process of its own (`benchmarks/bench_train.py --random-weights`, the
same `vlmgrpo.train.build_trainer` as `vlmgrpo train`): one optimizer step of one prompt with
2 completions of at most 4 tokens, on the synthetic task with images scaled to the preset's
pixel cap. The random models are built once and cached in bf16 (`vlmgrpo.standins`: 7.5 GB for
Qwen2.5-VL-3B, 4.3 GB for Qwen3-VL-2B, 8.9 GB for Qwen3-VL-4B). They train in bf16 as on a
GPU (`bench_train.py --bf16-on-cpu`): in the float32 that `vlmgrpo train` uses on a CPU, the
3B model's step outgrows a 24 GB machine (killed for memory here). Per preset it prints the
seconds to build (first time) and load the model, the seconds of the step, the process's peak
resident memory, the image tokens of one prompt and the trainable parameters. The figures
are of the shapes, not of learning: random weights answer noise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from vlmgrpo import presets

HERE = Path(__file__).resolve().parent
FIGURES = {
    "load s": r"model built or fetched, and loaded: ([\d.]+) s",
    "step s": r"seconds per step: ([\d.]+)",
    "peak GiB": r"peak (?:RSS|GPU memory): ([\d.]+) GiB",
    "image tokens": r"image tokens per prompt: (\d+)",
    "trainable": r"trainable parameters: ([\d,]+)",
}
# One prompt, two completions of a few tokens: the smallest step that is still GRPO's.
STEP = ["--steps", "1", "--warmup", "0", "--batch-size", "2", "--num-generations", "2"]
STEP += ["--max-completion-length", "4", "--bf16-on-cpu"]


def rehearse(name: str) -> dict:
    """One preset's step in a process of its own: its figures, or the error it ended on."""
    argv = [sys.executable, str(HERE / "bench_train.py"), "--preset", name, "--random-weights"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run([*argv, *STEP], capture_output=True, text=True, env=env)
    row = {"preset": name, "total s": f"{time.perf_counter() - start:.0f}", "status": "ok"}
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        row["status"] = f"exit {done.returncode}: {lines[-1][:120] if lines else '(no output)'}"
        return row
    for figure, pattern in FIGURES.items():
        found = re.search(pattern, done.stdout)
        row[figure] = found[1] if found else "?"
    return row


def table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table."""
    columns = ["preset", "load s", "step s", "total s", "peak GiB", "image tokens"]
    columns += ["trainable", "status"]
    cells = [[str(row.get(c, "-")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Rehearse each preset, print a line as each ends and the table; 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        action="append",
        choices=presets.GPU_PRESETS,
        help="rehearse this preset (repeatable; default: every GPU preset)",
    )
    args = parser.parse_args(argv)
    rows = []
    for name in args.preset or presets.GPU_PRESETS:
        rows.append(rehearse(name))
        print(f"{name}: {rows[-1]['status']} in {rows[-1]['total s']} s", flush=True)
    print(f"cores: {os.cpu_count()}; one optimizer step, 1 prompt x 2 completions of <= 4 tokens")
    print(table(rows))
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

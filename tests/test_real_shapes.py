"""`benchmarks/real_shapes.py`: its figures, read from `bench_train.py` run on the tiny model.

The rehearsal itself takes minutes per preset and ~16 GB (`make rehearse-shapes`); here the
same command line runs the tiny preset, and every figure the table shows must be found.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_of_the_rehearsal_is_read_from_bench_train(monkeypatch):
    real_shapes = load("real_shapes")
    argv = [sys.executable, str(BENCHMARKS / "bench_train.py"), "--preset", "tiny"]
    argv += ["--random-weights", *real_shapes.STEP]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    monkeypatch.setattr(real_shapes.subprocess, "run", lambda *a, **k: done)
    row = real_shapes.rehearse("tiny")
    assert row["status"] == "ok", row
    assert row["image tokens"] == "9"  # the tiny preset's 84 x 84 px in 28-px tokens
    assert row["trainable"] == "155,648"  # LoRA r=16 on the tiny language model's linears
    assert float(row["step s"]) > 0 and float(row["peak GiB"]) > 0 and float(row["load s"]) >= 0
    table = real_shapes.table([row]).splitlines()
    assert table[0].split()[:3] == ["preset", "load", "s"] and table[1].startswith("tiny ")


def test_a_failed_preset_is_a_row_naming_its_error(monkeypatch):
    real_shapes = load("real_shapes")
    failed = subprocess.CompletedProcess([], -9, stdout="", stderr="loading\nKilled\n")
    monkeypatch.setattr(real_shapes.subprocess, "run", lambda *a, **k: failed)
    assert real_shapes.rehearse("qwen2.5-vl-3b")["status"] == "exit -9: Killed"

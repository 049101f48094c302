"""`benchmarks/gpu_check.py` on the CPU, with the tiny model standing in for the 3B one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@slow
def test_gpu_check_runs_both_3b_presets_end_to_end(tiny_model_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--stand-in", tiny_model_dir, "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("preset "))
    rows = [line.split() for line in lines[header + 1 : header + 3]]
    assert [row[0] for row in rows] == ["qwen2.5-vl-3b", "qwen2.5-vl-3b-24gb"]
    for row in rows:
        steps, train_s, step_s, peak, eval_rows = row[1:6]
        assert steps == "3" and eval_rows == "8" and row[-1] == "ok"
        assert float(train_s) > 0 and float(step_s) > 0 and float(peak) > 0
    assert lines[-1].startswith("total: ")

"""`benchmarks/gpu_check.py` on the CPU, with a tiny model of each family standing in."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_bitsandbytes, slow
from vlmgrpo import presets
from vlmgrpo.utils import UsageError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@slow
@needs_bitsandbytes  # the 4-bit preset's row
def test_gpu_check_runs_a_preset_of_each_family_end_to_end(
    tiny_model_dir, tiny_qwen3vl_dir, tmp_path
):
    """One preset of each family (the 4-bit one for Qwen3-VL): each row is 4 fresh processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stand_ins = ["--stand-in", tiny_model_dir, "--stand-in", tiny_qwen3vl_dir]
    chosen = ["qwen2.5-vl-3b", "qwen3-vl-4b-qlora"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *stand_ins, "--work-dir", str(tmp_path)]
        + [arg for name in chosen for arg in ("--preset", name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("preset "))
    rows = [line.split() for line in lines[header + 1 : header + 1 + len(chosen)]]
    assert [row[0] for row in rows] == chosen
    for row in rows:
        steps, train_s, step_s, peak, eval_rows = row[1:6]
        assert steps == "3" and eval_rows == "8" and row[-1] == "ok"
        assert float(train_s) > 0 and float(step_s) > 0 and float(peak) > 0
    assert lines[-1].startswith("total: ")


def test_gpu_check_wants_a_stand_in_of_each_family(tiny_model_dir):
    """A stand-in of one family cannot stand in for a preset of another."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    folders = gpu_check.stand_ins([tiny_model_dir])
    assert folders == {"qwen2.5-vl": tiny_model_dir}
    assert gpu_check.model_for(presets.get_preset("qwen2.5-vl-3b"), folders) == tiny_model_dir
    with pytest.raises(UsageError, match="no --stand-in of the qwen3-vl family"):
        gpu_check.model_for(presets.get_preset("qwen3-vl-2b"), folders)

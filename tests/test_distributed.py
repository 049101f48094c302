"""`vlmgrpo train` under `accelerate launch`: two processes on the CPU, one run folder."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

from tests.conftest import slow

STEPS = 3


def free_port() -> int:
    """A TCP port nobody listens on, so a leftover run on accelerate's default cannot clash."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@slow
def test_two_processes_train_and_write_one_run_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    # `--cpu --num_processes 2` starts one process in accelerate 1.15 (more need mpirun);
    # `--multi_gpu` spawns them with torchrun, and without CUDA they meet over gloo.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    command += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    command += ["--dynamo_backend", "no", "--main_process_port", str(free_port())]
    command += ["-m", "vlmgrpo", "train", "--model", tiny_model_dir, "--output-dir", str(out)]
    command += ["--max-steps", str(STEPS), "--batch-size", "4", "--num-generations", "2"]
    command += ["--quiet"]
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",  # the CPU path, even on a machine with one GPU
        "OMP_NUM_THREADS": "1",  # two processes on two cores: more threads only contend
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((out / "eval.json").read_text())
    assert result["num_processes"] == 2  # both processes were in the Trainer's group
    assert result["steps"] == STEPS
    assert result["n_eval"] == 120  # each process scored half; the gathered result has all
    steps = [int(r["step"]) for r in csv.DictReader((out / "metrics.csv").open())]
    assert steps == list(range(1, STEPS + 1))  # one writer: each step once
    adapters = sorted(str(p.parent.relative_to(out)) for p in out.rglob("adapter_config.json"))
    assert adapters == ["adapter", f"checkpoint-{STEPS}"]
    assert done.stdout.count('"accuracy_after"') == 1  # one report, from the main process

"""Interruption, secrets and safe defaults: kill -9 then --resume, a fake HF_TOKEN, no opt-ins."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import slow
from tests.fixtures import make_fixture_dataset, write_checkpoint
from vlmgrpo import models, presets, runs, train

FAKE_TOKEN = "hf_FakeTokenForTheLeakTest0123456789abcd"
MAX_STEPS = 6
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def steps_in(metrics: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader(metrics.open())]


def test_every_preset_passes_its_own_checks():
    for preset in presets.PRESETS.values():
        presets.check_preset(preset)


def test_model_loading_trusts_remote_code_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def recorder(returned):
        def from_pretrained(source, **kwargs):
            calls.append(kwargs.get("trust_remote_code"))
            return returned

        return from_pretrained

    processor = SimpleNamespace(tokenizer=SimpleNamespace())
    monkeypatch.setattr(models.AutoModelForImageTextToText, "from_pretrained", recorder(None))
    monkeypatch.setattr(models.AutoProcessor, "from_pretrained", recorder(processor))
    preset = presets.PRESETS["tiny"]
    (tmp_path / "config.json").write_text("{}")  # a saved model's folder, as far as the check sees
    models.load_model(str(tmp_path), preset)
    assert calls == [False, False]  # model and processor
    models.load_model(str(tmp_path), preset, trust_remote_code=True)
    assert calls[2:] == [True, True]


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_nothing_is_pushed_to_the_hub(name, tmp_path):
    args = train.grpo_config(presets.PRESETS[name], tmp_path)
    assert args.push_to_hub is False and args.hub_token is None


def test_stored_notebook_outputs_hold_no_token():
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, f"no notebooks under {NOTEBOOKS}"
    token = re.compile(r"hf_[A-Za-z0-9]{30,}")  # the shape of a Hugging Face access token
    for notebook in notebooks:
        for cell in json.loads(notebook.read_text())["cells"]:
            outputs = json.dumps(cell.get("outputs", []))
            assert not token.search(outputs), f"{notebook.name} stores a token-like string"


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_model_dir, tmp_path_factory) -> SimpleNamespace:
    """A CLI run killed with SIGKILL after its first checkpoint, then resumed: with HF_TOKEN set.

    Shared by the interruption and the secrets tests: one training run costs tens of seconds.
    """
    root = tmp_path_factory.mktemp("killed")
    data, out = root / "data.parquet", root / "run"
    make_fixture_dataset(20).to_parquet(str(data))
    env = {
        **os.environ,
        "HF_TOKEN": FAKE_TOKEN,
        "HF_HOME": str(root / "hf_home"),  # no real token from ~/.cache, no shared cache
        "HF_HUB_OFFLINE": "1",
        # The tiny model gains nothing from more threads, and on shared cores spinning BLAS
        # threads make each step up to 100x slower (0.3 s -> 40 s measured).
        "OMP_NUM_THREADS": "1",
    }
    # Small batches keep each step well under a second; a checkpoint after every step.
    command = [sys.executable, "-m", "vlmgrpo", "train", "--model", tiny_model_dir]
    command += ["--dataset", str(data), "--output-dir", str(out), "--quiet"]
    command += ["--max-steps", str(MAX_STEPS), "--save-steps", "1", "--batch-size", "4"]
    command += ["--num-generations", "2"]
    logs = {name: root / f"{name}.log" for name in ("out1", "err1", "out2", "err2")}
    with logs["out1"].open("w") as stdout, logs["err1"].open("w") as stderr:
        first = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        try:
            state = out / "checkpoint-1" / "trainer_state.json"
            deadline = time.monotonic() + 300
            while not _is_json(state):
                assert first.poll() is None, f"ended first: {logs['err1'].read_text()[-2000:]}"
                assert time.monotonic() < deadline, "no checkpoint within 300 s"
                time.sleep(0.05)
            running = first.poll() is None
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()  # only if an assertion above failed; a no-op after SIGKILL
            first.wait()
    killed = SimpleNamespace(
        running=running,
        returncode=first.returncode,
        eval_written=(out / "eval.json").exists(),
        rows=list(csv.DictReader((out / "metrics.csv").open())),
    )
    # Leftovers of a kill while saving: one folder without its state, one with it cut short.
    write_checkpoint(out / "checkpoint-999", None)
    write_checkpoint(out / "checkpoint-500", '{"global_step": 5')
    resumed_from = runs.latest_checkpoint(out)
    with logs["out2"].open("w") as stdout, logs["err2"].open("w") as stderr:
        second = subprocess.run(
            [*command, "--resume"], env=env, stdout=stdout, stderr=stderr, timeout=400
        )
    return SimpleNamespace(
        out=out,
        killed=killed,
        resumed_from=resumed_from,
        returncode=second.returncode,
        logs={name: path.read_bytes() for name, path in logs.items()},
    )


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


@slow
def test_kill_9_then_resume_ends_at_the_step_count_with_each_step_once(killed_and_resumed):
    run = killed_and_resumed
    assert run.killed.running and run.killed.returncode == -signal.SIGKILL
    assert not run.killed.eval_written  # it really was cut off mid-run
    assert run.returncode == 0, run.logs["err2"].decode()[-3000:]
    err = run.logs["err2"].decode()
    assert "ignoring incomplete checkpoint-999, checkpoint-500" in err
    assert f"resuming from {run.resumed_from.name}" in err
    resumed_step = int(run.resumed_from.name.split("-")[1])
    assert 1 <= resumed_step < MAX_STEPS
    assert json.loads((run.out / "eval.json").read_text())["steps"] == MAX_STEPS
    assert steps_in(run.out / "metrics.csv") == list(range(1, MAX_STEPS + 1))
    # The steps up to the checkpoint were kept, not trained again: their rows are unchanged.
    rows = list(csv.DictReader((run.out / "metrics.csv").open()))
    before = [r for r in run.killed.rows if int(r["step"]) <= resumed_step]
    assert rows[:resumed_step] == before
    assert (run.out / "adapter" / "adapter_config.json").exists()


@slow
def test_fake_hf_token_appears_in_no_output(killed_and_resumed):
    run = killed_and_resumed
    files = [p for p in run.out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    # Every kind of output is there to be scanned.
    assert {"metrics.csv", "eval.json", "trainer_state.json", "adapter_model.safetensors"} <= names
    assert {"optimizer.pt", "training_args.bin", "reward_curve.png"} <= names
    assert any(name.startswith("events.out.tfevents.") for name in names)
    token = FAKE_TOKEN.encode()
    leaks = [str(p.relative_to(run.out)) for p in files if token in p.read_bytes()]
    leaks += [f"{name}.log" for name, text in run.logs.items() if token in text]
    assert leaks == []

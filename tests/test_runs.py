"""vlmgrpo.runs: the run folder's checkpoints and metrics survive a kill; the log's lines."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures import write_checkpoint
from vlmgrpo import runs


def steps_in(metrics: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader(metrics.open())]


def test_latest_checkpoint_skips_incomplete_ones(tmp_path, capsys):
    assert runs.latest_checkpoint(tmp_path) is None
    write_checkpoint(tmp_path / "checkpoint-999", None)  # killed before trainer_state.json
    assert runs.latest_checkpoint(tmp_path) is None
    assert "no complete checkpoint" in capsys.readouterr().err
    write_checkpoint(tmp_path / "checkpoint-2", '{"global_step": 2}')
    write_checkpoint(tmp_path / "checkpoint-10", '{"global_step": 10}')  # 10 > 2, not "1" < "2"
    write_checkpoint(tmp_path / "checkpoint-12", '{"global_st')  # killed while writing it
    (tmp_path / "checkpoint-50").write_text("a file, not a checkpoint")
    assert runs.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert capsys.readouterr().err == (
        "ignoring incomplete checkpoint-999, checkpoint-12 (interrupted while saving); "
        "resuming from checkpoint-10\n"
    )


def test_metrics_drop_a_row_torn_by_a_kill(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("step,loss,reward\n1,0.1,0.5\n2,0.2,0.6\n3,0.3")  # killed mid-row
    callback = runs.RunLog(path)
    state = SimpleNamespace(global_step=3)
    callback.on_train_begin(None, state, None)
    state.global_step = 4
    callback.on_log(None, state, None, logs={"loss": 0.4, "reward": 0.7})
    assert steps_in(path) == [1, 2, 4]  # step 3 is re-run by the trainer, then logged once


def test_metrics_csv_keeps_each_step_once_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    callback = runs.RunLog(path)
    state = SimpleNamespace(global_step=0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 6):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 0.1 * step, "reward": step})
    callback.on_log(None, state, None, logs={"train_loss": 1.0})  # the summary: not a step
    # A crash after step 5, resumed from the checkpoint of step 3.
    resumed = runs.RunLog(path)
    state.global_step = 3
    resumed.on_train_begin(None, state, None)
    for step in range(4, 7):
        state.global_step = step
        resumed.on_log(None, state, None, logs={"loss": 0.5, "reward": 1.0})
    steps = [int(r["step"]) for r in csv.DictReader(path.open())]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("lines", [True, False])
def test_the_log_prints_step_lines_unless_a_panel_draws_the_steps(tmp_path, lines):
    written = []
    callback = runs.RunLog(tmp_path / "metrics.csv", progress=True, lines=lines)
    state = SimpleNamespace(global_step=0, max_steps=20)
    callback.on_train_begin(None, state, None)
    callback.bar.write = written.append  # what the bar would print above itself
    for step in range(1, 21):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 0.1, "rewards/a/mean": 0.5})
    callback.on_train_end(None, state, None)
    assert len(written) == (11 if lines else 0), written  # steps 1, 3, 5, ..., 19 and 20
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 20

"""The run folder `vlmgrpo train` writes, and everything that reads it back.

A run folder holds ``run.json`` (what the run was started with: model, dataset, preset,
seed, settings; `vlmgrpo evaluate/generate --adapter DIR` read it), ``metrics.csv`` (one row
per logging step, the last step always included), TensorBoard events under ``runs/``,
``checkpoint-*``, the final LoRA ``adapter/``, ``reward_curve.png``, ``eval_before.json``
(the base model's answers and scores, reused by ``--resume``) and ``eval.json`` (accuracy
and format rate before and after GRPO).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from transformers import TrainerCallback

from vlmgrpo.presets import Preset
from vlmgrpo.utils import UsageError, progress_bar

RUN_FILE = "run.json"  # what a run was started with: evaluate/generate read it back
EVAL_BEFORE = "eval_before.json"  # the base model's scores, which --resume reuses
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# What `run` and the Trainer write into a run folder; --overwrite deletes nothing else.
_RUN_ENTRIES = re.compile(
    r"metrics\.csv|metrics\.tmp|eval\.json|eval_before\.json|run\.json|reward_curve\.png"
    r"|README\.md|adapter|runs|checkpoint-\d+"
)


# --- run.json ----------------------------------------------------------------------------------


def _source(value: str | None) -> str | None:
    """A model or dataset source as a run folder records it: local paths made absolute."""
    if value is None or not Path(value).expanduser().exists():
        return value
    return str(Path(value).expanduser().resolve())


def preset_settings(preset: Preset) -> dict:
    """The preset's fields but its name, as run.json and eval.json record them."""
    return {k: v for k, v in asdict(preset).items() if k != "name"}


def write_run_file(
    output_dir: Path, preset: Preset, model, dataset, seed: int, dtype: str
) -> None:
    """run.json: what `evaluate`/`generate --adapter DIR` need to rebuild the run's setting.

    `dtype` is the precision the run trains in ("bfloat16", "float16", "float32").
    """
    record = {
        "preset": preset.name,
        "model": _source(model),  # None: the tiny model
        "dataset": _source(dataset),  # None: the synthetic colour task
        "seed": seed,
        "dtype": dtype,
        "config": preset_settings(preset),
    }
    (output_dir / RUN_FILE).write_text(json.dumps(record, indent=2))


def read_run_file(run_dir: str | Path) -> dict:
    """A run folder's run.json, with its settings as a `Preset` under "preset"; or UsageError.

    `run_dir` may be the run folder, its adapter/ or one of its checkpoint-N folders.
    """
    path = Path(run_dir)
    for folder in (path, path.parent):
        if (folder / RUN_FILE).is_file():
            record = json.loads((folder / RUN_FILE).read_text())
            known = {f.name for f in fields(Preset)}
            config = {k: v for k, v in record["config"].items() if k in known}
            return {**record, "preset": Preset(name=record["preset"], **config)}
    raise UsageError(
        f"{run_dir} is not a run folder (no {RUN_FILE}); pass a folder written by "
        "`vlmgrpo train`, or --adapter with --preset and --model for a bare adapter"
    )


# --- the "before" evaluation --------------------------------------------------------------------


def write_eval_before(output_dir: Path, scores: dict, preset: Preset) -> None:
    """eval_before.json: the base model's scores and answers, with what they depend on."""
    record = {"eval_max_new_tokens": preset.eval_max_new_tokens, **scores}
    (output_dir / EVAL_BEFORE).write_text(json.dumps(record, indent=1))


def read_eval_before(output_dir: Path, n: int, preset: Preset) -> dict | None:
    """The stored "before" scores if they are of the same `n` rows and length, else None.

    A resumed run scores the same base model on the same held-out rows: the stored scores
    save it the time (up to an hour of 1,024-token answers on a GPU preset).
    """
    try:
        record = json.loads((output_dir / EVAL_BEFORE).read_text())
    except (OSError, ValueError):
        return None
    same = record.get("n") == n and record.get("eval_max_new_tokens") == preset.eval_max_new_tokens
    return record if same else None


# --- the folder itself -------------------------------------------------------------------------


def check_output(output_dir: Path, resume: bool, overwrite: bool) -> None:
    """Raise a one-line UsageError unless `output_dir` may take this run."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; pass one of them")
    entries = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if entries and not (resume or overwrite):
        raise UsageError(
            f"output folder {output_dir} already holds a run; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --output-dir"
        )
    foreign = [name for name in entries if not _RUN_ENTRIES.fullmatch(name)]
    if overwrite and foreign:  # a mistyped --output-dir must not delete someone's folder
        raise UsageError(
            f"--overwrite would delete {output_dir}, which holds {foreign[0]!r}, not written by "
            "`vlmgrpo train`; choose another --output-dir"
        )


def make_output(output_dir: Path, overwrite: bool) -> None:
    """Create `output_dir`, emptied first with `overwrite` (after `check_output` allowed it)."""
    if overwrite and output_dir.exists():
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)


# --- checkpoints and adapters ------------------------------------------------------------------


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete `checkpoint-N` in `output_dir`, or None; incomplete ones are named.

    The Trainer writes a checkpoint in place, trainer_state.json last, so a run killed while
    saving leaves a folder without it (or with it cut short): resuming from that would fail.
    """
    found = sorted(
        (int(m[1]), p)
        for p in Path(output_dir).glob("checkpoint-*")
        if (m := _CHECKPOINT.fullmatch(p.name)) and p.is_dir()
    )
    incomplete = []
    for _, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            incomplete.append(path.name)
            continue
        if incomplete:
            print(
                f"ignoring incomplete {', '.join(incomplete)} (interrupted while saving); "
                f"resuming from {path.name}",
                file=sys.stderr,
            )
        return path
    if incomplete:
        print(f"no complete checkpoint in {output_dir}; starting from step 0", file=sys.stderr)
    return None


def adapter_folder(path: Path) -> Path:
    """The LoRA adapter in a run folder (adapter/, else its newest checkpoint) or `path`."""
    if (path / "adapter").is_dir():
        return path / "adapter"
    if (path / "adapter_config.json").exists():
        return path
    if found := latest_checkpoint(path):
        print(f"vlmgrpo: {path} has no final adapter yet; using {found.name}", file=sys.stderr)
        return found
    raise UsageError(
        f"{path} holds no LoRA adapter (adapter_config.json); pass a run folder written by "
        "`vlmgrpo train` or its adapter/ folder"
    )


# --- metrics.csv and the log lines -------------------------------------------------------------


class RunLog(TrainerCallback):
    """Each training log: a row of metrics.csv and, with `progress`, one compact line.

    The line (step, reward per function, reward std, completion length, seconds per step)
    stays readable on a terminal over ssh, under a progress bar: the bar shows the latest one,
    and about ten of them are kept above it, one per tenth of the run, so a notebook's output
    stays short. metrics.csv and TensorBoard keep every column. On resume, rows past the
    checkpoint's step are dropped first, so each step appears once. With `lines` False the bar
    alone is shown: a live panel beside it (`plots.TrainingPanel`) already draws every step.
    """

    def __init__(self, path: str | Path, progress: bool = False, lines: bool = True):
        self.path = Path(path)
        self.progress = progress
        self.lines = lines
        self.columns: list[str] | None = None
        self.bar = None
        self._tick = time.perf_counter()
        self._step = 0
        self._next_line = 0

    def on_train_begin(self, args, state, control, **kwargs):
        rows = _read_csv(self.path)
        # A run killed mid-write can leave a torn last row: short rows have None cells.
        kept = [r for r in rows if None not in r.values() and int(r["step"]) <= state.global_step]
        if rows:
            self.columns = list(rows[0])
            _write_csv(self.path, self.columns, kept)
        self._tick, self._step = time.perf_counter(), state.global_step
        if self.progress:
            self.bar = progress_bar(
                total=state.max_steps, initial=state.global_step, desc="GRPO steps"
            )
        self._next_line = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # the final summary log has train_loss instead
            return
        now = time.perf_counter()
        steps = max(1, state.global_step - self._step)
        row = {"step": state.global_step, **logs, "step_seconds": (now - self._tick) / steps}
        self._tick, self._step = now, state.global_step
        if self.columns is None:
            self.columns = list(row)
            _write_csv(self.path, self.columns, [])
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        if self.bar is not None:
            line = log_line(row, state.max_steps)
            self.bar.set_postfix_str(line.split(" | ", 1)[-1], refresh=False)
            due = state.global_step >= self._next_line or state.global_step >= state.max_steps
            if self.lines and due:
                self.bar.write(line)
                self._next_line = state.global_step + max(1, state.max_steps // 10)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def log_line(row: dict, max_steps: int) -> str:
    """One training log as a short line: step, rewards, reward std, length, seconds per step."""
    rewards = [
        f"{key.split('/')[1].removesuffix('_reward')} {value:.2f}"
        for key, value in row.items()
        if key.startswith("rewards/") and key.endswith("/mean")
    ]
    parts = [f"step {row['step']}/{max_steps}", " ".join(rewards)]
    if "reward_std" in row:
        parts.append(f"reward std {row['reward_std']:.2f}")
    if "completions/mean_length" in row:
        parts.append(f"length {row['completions/mean_length']:.0f}")
    parts.append(f"{row['step_seconds']:.1f} s/step")
    return " | ".join(p for p in parts if p)


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)

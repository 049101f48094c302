"""What the notebooks share: their first cell, their preset, and a finished run loaded back.

* `setup()`: a notebook's first call. No known library warnings, no data-preparation or
  weight-loading bars (training and evaluation keep theirs); it prints the versions and device.
* `notebook_preset()`: the course's one switch, ``VLMGRPO_PRESET``, with its overrides.
* `notebook_run_name()`: the run folder of a preset and its overrides.
* `load_run(run_dir)`: a finished run, as `vlmgrpo evaluate --adapter RUN_DIR` loads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlmgrpo.presets import PRESETS, Preset
from vlmgrpo.utils import UsageError, quiet_known_warnings

# What a notebook may change of its preset, as `vlmgrpo train`'s flags of the same names do:
# the model and dataset (a local copy, a box without the hub), and a short run's length.
NOTEBOOK_OVERRIDES = {
    "VLMGRPO_MODEL": "model",
    "VLMGRPO_DATASET": "dataset",
    "VLMGRPO_MAX_STEPS": "max_steps",
    "VLMGRPO_EVAL_ROWS": "eval_rows",
}


def setup(versions: bool = True) -> None:
    """A notebook's first cell: quiet the known library noise, then print what runs the course.

    Call it before anything imports peft (which loads bitsandbytes and its CPU warning).
    """
    import datasets
    from transformers.utils import logging as hf_logging

    quiet_known_warnings()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    if versions:
        from importlib.metadata import version

        from vlmgrpo.utils import get_device

        print(" | ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "trl")))
        print(f"peft {version('peft')} | device {get_device()}")


def notebook_preset() -> Preset:
    """The preset every notebook uses: $VLMGRPO_PRESET (unset: ``tiny``), with its overrides.

    One switch for the whole course: ``VLMGRPO_PRESET=qwen2.5-vl-3b jupyter lab``. Beside it,
    as `vlmgrpo train`'s --model, --dataset, --max-steps and --eval-rows: ``VLMGRPO_MODEL``
    (a hub id or folder; its config's family sizes the images), ``VLMGRPO_DATASET`` (a hub id
    or path), ``VLMGRPO_MAX_STEPS`` and ``VLMGRPO_EVAL_ROWS`` (training steps, and held-out
    rows scored: a short run, for a smoke test or the tests). A path that does not exist, or a
    count below 1, is a one-line UsageError before anything loads.
    """
    name = os.environ.get("VLMGRPO_PRESET") or "tiny"
    if name not in PRESETS:
        raise UsageError(
            f"VLMGRPO_PRESET={name!r} is not a preset; set it to one of: {', '.join(PRESETS)}"
        )
    preset = PRESETS[name]
    given = {field: os.environ.get(var) or None for var, field in NOTEBOOK_OVERRIDES.items()}
    if not any(given.values()):
        return preset
    for var in ("VLMGRPO_MAX_STEPS", "VLMGRPO_EVAL_ROWS"):
        field_name = NOTEBOOK_OVERRIDES[var]
        if given[field_name] is not None:
            given[field_name] = _count(var, given[field_name])
    from vlmgrpo.settings import resolve  # imports torch, transformers and datasets

    names = {field: var for var, field in NOTEBOOK_OVERRIDES.items() if given[field] is not None}
    return resolve(preset, training=False, names=names, **given)


def _count(var: str, value: str) -> int:
    """The whole number >= 1 in environment variable `var`, or a one-line UsageError."""
    if not value.strip().isdigit() or int(value) < 1:
        raise UsageError(f"{var}={value!r} must be a whole number of 1 or more (or unset)")
    return int(value)


def notebook_run_name(prefix: str, preset: Preset) -> str:
    """The run folder's name, `prefix-preset`, plus each override `notebook_preset` applied.

    Notebook 04 keeps a GPU preset's finished run instead of retraining it, so a run of
    another model or dataset, or a short one, needs a folder of its own: ``nb04-qwen2.5-vl-3b``
    is the preset's full run, ``nb04-qwen2.5-vl-3b-Qwen2.5-VL-3B-Instruct-5steps`` a 5-step run
    of a local copy of its model.
    """
    named = PRESETS[preset.name]
    parts = [prefix, preset.name]
    for source, default in ((preset.model, named.model), (preset.dataset, named.dataset)):
        if source is not None and source != default:
            # The folder's or file's name (a hub id's second half): what a person recognises.
            parts.append(Path(source).name.removesuffix(".parquet").removesuffix(".arrow"))
    if preset.max_steps != named.max_steps:
        parts.append(f"{preset.max_steps}steps")
    if preset.eval_rows != named.eval_rows:
        parts.append(f"eval{preset.eval_rows}")
    return "-".join(parts)


@dataclass
class Run:
    """A finished run loaded back: its settings, trained model, processor and scored rows."""

    preset: Preset  # as run.json records it, its family read from the model
    model: object  # the base model with the run's LoRA adapter (a peft PeftModel), in eval mode
    processor: object
    test_set: object  # the held-out rows the run scored (its seed, its eval_rows)
    result: dict | None  # eval.json; None while the run has not finished
    seed: int


def load_run(run_dir: str | Path, device=None, trust_remote_code: bool = False) -> Run:
    """The run in `run_dir` (a folder `vlmgrpo train` or `train.run` wrote), loaded back.

    The same path as `vlmgrpo evaluate --adapter RUN_DIR`: run.json's settings, the model it
    trained with its final adapter (else its newest checkpoint), on `device` (default: the
    best one), and the held-out rows it scored. `model.disable_adapter()` gives the base model.
    """
    from vlmgrpo import data, models, runs
    from vlmgrpo.settings import resolve

    record = runs.read_run_file(run_dir)
    preset = resolve(
        record["preset"],
        model=record["model"],
        dataset=record["dataset"],
        training=False,
        trust_remote_code=trust_remote_code,
    )
    adapter = runs.adapter_folder(Path(run_dir))
    model, processor = models.load_trained(
        preset.model, preset, adapter, trust_remote_code, device
    )
    _, test_set = data.load_data(preset, preset.dataset, record["seed"])
    eval_file = Path(run_dir) / "eval.json"
    result = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    return Run(
        preset=preset,
        model=model,
        processor=processor,
        test_set=data.first_rows(test_set, preset.eval_rows),
        result=result,
        seed=record["seed"],
    )

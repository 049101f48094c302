"""A run's final settings, decided once: the preset, the changes asked, the family, checked.

Training (`vlmgrpo.train.run`), the command line (`vlmgrpo train`, `evaluate`, `generate`) and
the notebooks (`vlmgrpo.course.notebook_preset`) all call `resolve`; nothing after it decides a
setting again. What it decides:

* the preset's fields, with the changes given (None keeps the preset's value);
* the model family, read from the model's config (a ``--model`` of another family than the
  preset's keeps its own 28 or 32 px per image token), which sizes the images;
* every check that costs no time: the settings TRL would reject (`presets.check_preset`), the
  dataset's and model's paths, and a 4-bit preset's library (`models.check_quantization`).

The precision follows from the result and the machine (`models.compute_dtype`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from vlmgrpo import data, models
from vlmgrpo.presets import Preset, apply_settings, check_preset, get_preset
from vlmgrpo.utils import UsageError


def resolve(
    preset: str | Preset = "tiny",
    *,
    training: bool = True,
    trust_remote_code: bool = False,
    num_processes: int | None = None,
    names: dict[str, str] | None = None,
    **changes,
) -> Preset:
    """The preset named (or given) with `changes` (`Preset` fields), its family, checked.

    `training` False skips the checks only training needs (group sizes, vLLM, the learning
    rate): a finished run's settings are loaded to evaluate or generate. A bad setting is a
    one-line UsageError before anything loads. `num_processes` defaults to the number
    `accelerate launch` started. `names` says what the user called a setting, for the
    settings whose errors should name it: ``{"model": "VLMGRPO_MODEL"}`` starts an error about
    the model with ``VLMGRPO_MODEL:``.
    """
    names = names or {}
    preset = get_preset(preset) if isinstance(preset, str) else preset
    preset = apply_settings(preset, **changes)
    if training:
        check_preset(preset, num_processes)
    if preset.dataset is not None:
        with _named(names.get("dataset")):
            data.check_dataset_source(preset.dataset)
    models.check_quantization(preset)
    with _named(names.get("model")):
        family = models.model_family(preset.model, preset.family, trust_remote_code)
    return replace(preset, family=family)


@contextmanager
def _named(name: str | None) -> Iterator[None]:
    """Start a UsageError with `name`, the flag or variable that set what failed (None: as is)."""
    try:
        yield
    except UsageError as err:
        if name is None:
            raise
        raise UsageError(f"{name}: {err}") from err

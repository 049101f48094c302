"""Small helpers shared by every module: device choice, seeding, user-facing errors."""

from __future__ import annotations

import io
import os
import random
import warnings

import numpy as np
import torch
from tqdm import std
from tqdm.auto import tqdm as auto_tqdm


class UsageError(ValueError):
    """A problem with the user's input; the CLI prints its message on one line and exits 2."""


def get_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


# Warnings raised by libraries about their own use of a deprecated name, with nothing for the
# user to change: transformers 5.24 renamed gradient checkpointing to activation checkpointing,
# and TRL 1.16 (`GRPOConfig`'s own default, `unwrap_model_for_generation`, its generation step)
# and peft 0.21 (`PeftModel`) still use `gradient_checkpointing`, `is_gradient_checkpointing`
# and `gradient_checkpointing_enable` / `_disable`. The one place such warnings are hidden.
KNOWN_LIBRARY_WARNINGS = (
    (FutureWarning, r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated"),
)


def quiet_known_warnings() -> None:
    """Hide `KNOWN_LIBRARY_WARNINGS` (called by the CLI; importing changes nothing)."""
    for category, message in KNOWN_LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_notebook() -> None:
    """A notebook's first cell: no known library warnings, no data or weight-loading bars.

    Training and evaluation keep their progress bars; what `datasets` prints while it maps
    and filters, and transformers while it loads weights, is residue on a stored page.
    """
    import datasets
    from transformers.utils import logging as hf_logging

    quiet_known_warnings()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def _in_jupyter_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


class _TextBar(std.tqdm):
    """tqdm drawn as one text output that each refresh replaces (a Jupyter display handle).

    A widget bar is stored with the text of its first frame ("0%| | 0/3"), which is what a
    notebook viewer without the widget's state shows; this bar's stored output is its last
    frame. Lines written with `write` print below it.
    """

    def __init__(self, *args, **kwargs):
        self._handle = None
        kwargs["file"] = io.StringIO()  # the terminal rendering goes nowhere
        kwargs.setdefault("ascii", False)  # block characters, as tqdm draws on a terminal
        super().__init__(*args, **kwargs)
        if not self.disable:
            from IPython.display import display

            self._handle = display({"text/plain": str(self)}, raw=True, display_id=True)

    def display(self, msg=None, pos=None):
        if self._handle is not None:
            self._handle.update({"text/plain": str(self)}, raw=True)
        return True


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar: in a Jupyter kernel one text output updated in place, elsewhere tqdm.auto's."""
    bar = _TextBar if _in_jupyter_kernel() else auto_tqdm
    return bar(iterable, **kwargs)

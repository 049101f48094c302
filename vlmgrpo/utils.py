"""Small helpers shared by every module: device, processes, seeding, errors, progress bars."""

from __future__ import annotations

import io
import logging
import os
import random
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env
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


def distributed_state() -> PartialState:
    """This process's place among those `accelerate launch` started (alone without it)."""
    # Without cpu=True on a machine with no GPU, accelerate finds no backend and reports one
    # process even when `accelerate launch` started several. This call may create the process
    # group, so it gets the Trainer's own default timeout (ddp_timeout, 30 min): the others
    # wait up to that long while the main process downloads or builds the model.
    cpu = not torch.cuda.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU")
    return PartialState(cpu=cpu, timeout=timedelta(minutes=30))


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A folder beside `out` to write into, which replaces `out` only when the block ends.

    An interrupted save never looks finished: the one rename happens last, and a leftover
    ``NAME.partial`` folder is removed (by the next attempt, or on the way out).
    """
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


# bitsandbytes 0.50 logs, when imported on a CPU with AVX512-BF16, that it found no faster
# inference kernel for 4-bit layers (from the `kernels` package); vlmgrpo does not use that
# path (`vlmgrpo.models.load_model` keeps 4-bit layers trainable on a CPU).
KNOWN_LIBRARY_LOGGERS = ("bitsandbytes.backends.cpu.ops",)


def quiet_known_warnings() -> None:
    """Hide `KNOWN_LIBRARY_WARNINGS` and `KNOWN_LIBRARY_LOGGERS`' warnings (CLI, notebooks).

    Called by the CLI and a notebook's first cell; importing this module changes nothing.
    """
    for category, message in KNOWN_LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in KNOWN_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


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

    Its redraws are spaced out as it ages: at most one a second, and at most one per
    `SHARE`-th of the time since it started, so that a bar of any length sends a few hundred
    updates at most (about SHARE * (1 + ln(t / SHARE s)) in t seconds); the last frame is
    always drawn. A client that reads a cell's outputs only once the cell has run (nbval,
    nbclient) finds them queued, and ZeroMQ drops what its queues cannot hold, the cell's
    closing status among it: thousands of updates in one cell make such a client wait for
    an end it never sees.
    """

    MIN_INTERVAL = 1.0  # seconds between redraws, at least
    SHARE = 50

    def __init__(self, *args, **kwargs):
        self._handle = None
        self._started = self._drawn_at = time.monotonic()
        self._closing = False
        kwargs["file"] = io.StringIO()  # the terminal rendering goes nowhere
        kwargs.setdefault("ascii", False)  # block characters, as tqdm draws on a terminal
        kwargs.setdefault("mininterval", self.MIN_INTERVAL)
        super().__init__(*args, **kwargs)
        if not self.disable:
            from IPython.display import display

            self._handle = display({"text/plain": str(self)}, raw=True, display_id=True)

    def display(self, msg=None, pos=None):
        if self._handle is None:
            return True
        now = time.monotonic()
        if not self._closing:
            spacing = max(self.MIN_INTERVAL, (now - self._started) / self.SHARE)
            if now - self._drawn_at < spacing:
                return True
        self._drawn_at = now
        self._handle.update({"text/plain": str(self)}, raw=True)
        return True

    def close(self):
        self._closing = True  # tqdm draws the final frame from here
        super().close()


# Set inside `progress_bars(False)`: every `progress_bar` is then drawn disabled.
_bars_off = False


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar: in a Jupyter kernel one text output updated in place, elsewhere tqdm.auto's."""
    bar = _TextBar if _in_jupyter_kernel() else auto_tqdm
    if _bars_off:
        kwargs["disable"] = True
    return bar(iterable, **kwargs)


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """With `enabled` False, no progress bar inside the block, whoever draws it.

    Ours, and those of datasets (map, filter, downloads), transformers (weight loading) and
    the hub (downloads); each library's own setting is put back afterwards. (TQDM_DISABLE
    would not do: tqdm reads it once, when it is imported, and child processes inherit it.)
    """
    if enabled:
        yield
        return
    import datasets
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    global _bars_off
    before = (
        _bars_off,
        datasets.is_progress_bar_enabled(),
        hf_logging.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
    )
    _bars_off = True
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()  # the hub's bars too
    try:
        yield
    finally:
        _bars_off = before[0]
        if before[1]:
            datasets.enable_progress_bars()
        if before[2]:
            hf_logging.enable_progress_bar()  # turns the hub's on: set again below
        if before[3]:
            hub_utils.disable_progress_bars()
        else:
            hub_utils.enable_progress_bars()

"""Small helpers shared by every module: device choice, seeding, user-facing errors."""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch


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

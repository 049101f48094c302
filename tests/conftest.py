"""Shared fixtures: small tiny models (one per family) built once per session."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests import latex_task
from tests.fixtures import make_article_dataset
from vlmgrpo import standins, tasks, tiny

# The tiers: a registered marker each (pyproject.toml), so `-m "not slow"` selects, and an
# environment variable that runs them (the Makefile's targets set it).
SLOW = os.environ.get("VLMGRPO_SLOW") == "1"
_skip_slow = pytest.mark.skipif(not SLOW, reason="long run; set VLMGRPO_SLOW=1 (make test does)")
# The install paths (resolver dry runs on PyPI, the offline workshop kit): network-bound
# minutes that say nothing about the course's code, so a tier of their own.
INSTALL = os.environ.get("VLMGRPO_INSTALL") == "1"
_skip_install = pytest.mark.skipif(
    not INSTALL, reason="install path; set VLMGRPO_INSTALL=1 (make test-install does)"
)


def slow(test):
    """A long run: marked `slow`, and skipped unless VLMGRPO_SLOW=1."""
    return pytest.mark.slow(_skip_slow(test))


SLOW_MARKS = [pytest.mark.slow, _skip_slow]  # the same, for one `pytest.param`


def install(test):
    """An install path: marked `install`, and skipped unless VLMGRPO_INSTALL=1."""
    return pytest.mark.install(_skip_install(test))


# 4-bit runs need bitsandbytes, which the install brings on Linux and Windows, not macOS.
needs_bitsandbytes = pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is None,
    reason="4-bit needs bitsandbytes (installed on Linux and Windows; pip install it on macOS)",
)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny model with a short cold start: real classes and files, seconds to build."""
    spec = replace(tiny.TinySpec(), warmup_steps=30, warmup_batch=16)
    return str(tiny.make_tiny(spec, tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="session")
def tiny_qwen3vl_dir(tmp_path_factory) -> str:
    """A tiny Qwen3-VL with the same short cold start: the Qwen3-VL presets' stand-in."""
    spec = replace(tiny.TinySpec(), warmup_steps=30, warmup_batch=16)
    return str(standins.tiny_qwen3vl(tmp_path_factory.mktemp("tiny-qwen3-vl") / "model", spec))


@pytest.fixture(scope="session")
def tiny_reasoning_dir(tmp_path_factory) -> str:
    """The price task's tiny model with a token pretraining and cold start: seconds to build."""
    spec = replace(
        tiny.SPECS["prices"],
        copy_steps=30,
        copy_context_steps=10,
        warmup_steps=30,
        warmup_batch=16,
    )
    return str(tiny.make_tiny(spec, tmp_path_factory.mktemp("tiny-reasoning") / "model"))


@pytest.fixture(scope="session")
def article_file(tmp_path_factory) -> Path:
    """400 rows in the real schema: the GPU presets' 5 % slice is 20 rows, 4 held out."""
    path = tmp_path_factory.mktemp("article") / "article.parquet"
    make_article_dataset(400).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def latex_stand_ins(tmp_path_factory) -> dict[str, str]:
    """A stand-in of each family cold-started to write LaTeX (`tests.latex_task`): {family: dir}.

    What they sample holds `$`, `\\frac`, `^`, `_`, braces and stray dollars, as a real model's
    answers on the real dataset do.
    """
    spec = replace(tiny.TinySpec(), task="latex", warmup_steps=40, warmup_batch=16)
    folder = tmp_path_factory.mktemp("latex-stand-ins")
    tasks.TASKS["latex"] = latex_task
    try:
        return {
            "qwen2.5-vl": str(tiny.make_tiny(spec, folder / "qwen2.5-vl")),
            "qwen3-vl": str(standins.tiny_qwen3vl(folder / "qwen3-vl", spec)),
        }
    finally:
        del tasks.TASKS["latex"]


@pytest.fixture(scope="session")
def latex_article_file(tmp_path_factory) -> Path:
    """`article_file`'s rows with their problems in LaTeX, one unbalanced `$` in each."""
    path = tmp_path_factory.mktemp("latex-article") / "article.parquet"
    make_article_dataset(400, latex=True).to_parquet(str(path))
    return path

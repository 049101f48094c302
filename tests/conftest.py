"""Shared fixtures: small tiny models (one per family), each built once for the whole run.

The package is imported inside the fixtures, not here: pytest-xdist's controller loads this
file too, and it runs no test, so it need not pay torch's and transformers' import.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from filelock import FileLock

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


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """`build(folder)` run once for the whole test run, the pytest-xdist workers included.

    The first worker to ask builds `name` under the run's shared temporary folder; the others
    wait for it and read what it wrote. A folder is done when its `.done` mark exists.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # every worker's base folder sits in the run's own
    folder = root / "built" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / ".done").exists():
            folder.mkdir(exist_ok=True)
            build(folder)
            (folder / ".done").touch()
    return folder


def _short_spec(base: str = "colour", **changes):
    """A tiny model's spec (`tiny.SPECS[base]`) with a shorter cold start."""
    from vlmgrpo import tiny

    return replace(tiny.SPECS[base], **changes)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny model with a short cold start: real classes and files, seconds to build."""
    from vlmgrpo import tiny

    spec = _short_spec(warmup_steps=30, warmup_batch=16)
    folder = built_once(tmp_path_factory, "tiny", lambda f: tiny.make_tiny(spec, f / "model"))
    return str(folder / "model")


@pytest.fixture(scope="session")
def tiny_qwen3vl_dir(tmp_path_factory) -> str:
    """A tiny Qwen3-VL with the same short cold start: the Qwen3-VL presets' stand-in."""
    from vlmgrpo import standins

    spec = _short_spec(warmup_steps=15, warmup_batch=16)
    build = lambda f: standins.tiny_qwen3vl(f / "model", spec)  # noqa: E731
    return str(built_once(tmp_path_factory, "tiny-qwen3-vl", build) / "model")


@pytest.fixture(scope="session")
def tiny_reasoning_dir(tmp_path_factory) -> str:
    """The price task's tiny model with a token pretraining and cold start: seconds to build."""
    from vlmgrpo import tiny

    spec = _short_spec(
        "prices", copy_steps=30, copy_context_steps=10, warmup_steps=30, warmup_batch=16
    )
    build = lambda f: tiny.make_tiny(spec, f / "model")  # noqa: E731
    return str(built_once(tmp_path_factory, "tiny-reasoning", build) / "model")


@pytest.fixture(scope="session")
def article_file(tmp_path_factory) -> Path:
    """400 rows in the real schema: the GPU presets' 5 % slice is 20 rows, 4 held out."""
    from tests.fixtures import make_article_dataset

    path = tmp_path_factory.mktemp("article") / "article.parquet"
    make_article_dataset(400).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def latex_stand_ins(tmp_path_factory) -> dict[str, str]:
    """A stand-in of each family cold-started to write LaTeX (`tests.latex_task`): {family: dir}.

    What they sample holds `$`, `\\frac`, `^`, `_`, braces and stray dollars, as a real model's
    answers on the real dataset do.
    """
    from tests import latex_task
    from vlmgrpo import standins, tasks, tiny

    spec = _short_spec(task="latex", warmup_steps=40, warmup_batch=16)

    def build(folder: Path) -> None:
        tasks.TASKS["latex"] = latex_task
        try:
            tiny.make_tiny(spec, folder / "qwen2.5-vl")
            standins.tiny_qwen3vl(folder / "qwen3-vl", spec)
        finally:
            del tasks.TASKS["latex"]

    folder = built_once(tmp_path_factory, "latex-stand-ins", build)
    return {family: str(folder / family) for family in ("qwen2.5-vl", "qwen3-vl")}


@pytest.fixture(scope="session")
def latex_article_file(tmp_path_factory) -> Path:
    """`article_file`'s rows with their problems in LaTeX, one unbalanced `$` in each."""
    from tests.fixtures import make_article_dataset

    path = tmp_path_factory.mktemp("latex-article") / "article.parquet"
    make_article_dataset(400, latex=True).to_parquet(str(path))
    return path

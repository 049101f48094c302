"""The stored notebooks read like a textbook page: every figure shown, no noise, no machine paths.

nbval re-executes the notebooks and compares their outputs, but a cell that plots nothing
agrees with a stored cell that shows nothing, and stderr is not compared at all. These checks
read the stored outputs that a learner opens in JupyterLab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STORED = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted(NOTEBOOKS.glob("solutions/*.ipynb"))
# A cell draws a figure when it calls pyplot or one of vlmgrpo.plots' plot_ functions.
DRAWS = re.compile(r"\bplt\.(subplots?|figure|plot|bar|imshow)\(|\bplots\.plot_\w+\(")
# Paths of the machine that executed the notebook (home, checkout, temp, installed packages).
MACHINE_PATHS = re.compile(r"(/work/|/root/|/home/|/Users/|/tmp/|site-packages|\.venv/|C:\\\\)")
WARNINGS = re.compile(r"\b\w*Warning\b|^WARNING|Traceback \(most recent call last\)", re.M)
# Data preparation progress (datasets' map/filter, weight loading): off in notebooks.
DATA_PROGRESS = re.compile(r"^(Preparing|Filter|Map|Loading|Generating|Casting|Saving|Fetching)")


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def output_texts(output: dict) -> list[str]:
    """Every text a learner can see in one output (images excluded)."""
    if output["output_type"] == "stream":
        return ["".join(output["text"])]
    if output["output_type"] == "error":
        return ["\n".join(output.get("traceback", []))]
    data = output.get("data", {})
    return ["".join(v) for k, v in data.items() if k.startswith("text/")]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def label(path: Path, index: int, cell: dict) -> str:
    return f"{path.relative_to(NOTEBOOKS)} cell {index}: {source(cell)[:60]!r}"


def test_every_notebook_is_found():
    names = [p.name for p in STORED]
    assert len([n for n in names if re.match(r"\d\d_", n)]) >= 5, names


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_plotting_cells_store_their_figure(path):
    missing = [
        label(path, i, cell)
        for i, cell in enumerate(code_cells(path))
        if DRAWS.search(source(cell))
        and not any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
    ]
    assert not missing, "cells that plot but store no image:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_outputs_are_clean(path):
    problems = []
    for i, cell in enumerate(code_cells(path)):
        assert cell.get("execution_count") is not None, f"{label(path, i, cell)} not executed"
        for output in cell.get("outputs", []):
            where = label(path, i, cell)
            if output.get("name") == "stderr":
                problems.append(f"{where}: stderr output {''.join(output['text'])[:120]!r}")
            if output["output_type"] == "error":
                problems.append(f"{where}: stored error")
            for text in output_texts(output):
                if match := MACHINE_PATHS.search(text):
                    problems.append(f"{where}: machine path near {text[match.start() :][:80]!r}")
                if match := WARNINGS.search(text):
                    problems.append(f"{where}: warning near {text[match.start() :][:80]!r}")
                if "Training Loss" in text:
                    problems.append(f"{where}: Trainer's loss table")
                if DATA_PROGRESS.search(text.strip()):
                    problems.append(f"{where}: data progress bar {text.strip()[:60]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_outputs_stay_short(path):
    """No cell floods the page: at most 40 lines of text per output."""
    long = [
        f"{label(path, i, cell)}: {len(text.splitlines())} lines"
        for i, cell in enumerate(code_cells(path))
        for output in cell.get("outputs", [])
        for text in output_texts(output)
        if len(text.splitlines()) > 40 and "text/html" not in output.get("data", {})
    ]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_ends_with_exercises(path):
    if path.parent.name == "solutions":
        pytest.skip("a solutions notebook is the answer to exercises")
    cells = json.loads(path.read_text())["cells"]
    headings = [source(c) for c in cells if c["cell_type"] == "markdown"]
    exercises = [i for i, text in enumerate(headings) if text.startswith("## Exercises")]
    assert exercises, f"{path.name} has no '## Exercises' section"
    text = "\n".join(headings[exercises[-1] :])
    count = len(re.findall(r"^\s*\d+\.\s", text, re.M))
    assert 2 <= count <= 4, f"{path.name}: {count} exercises, want 2 to 4"
    assert (NOTEBOOKS / "solutions" / path.name).is_file(), f"no solutions/{path.name}"


# A tqdm bar's text: "desc: 40%|████      | 2/5 [...]".
BAR = re.compile(r"(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_no_progress_bar_is_stored_half_drawn(path):
    """A stored bar shows where it finished: a first frame reads as if nothing ran."""
    problems = []
    for i, cell in enumerate(code_cells(path)):
        for output in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                problems.append(f"{label(path, i, cell)}: a widget, stored as its first frame")
            for text in output_texts(output):
                for done, total in ((int(m[2]), int(m[3])) for m in BAR.finditer(text)):
                    if done < total:
                        problems.append(f"{label(path, i, cell)}: bar stored at {done}/{total}")
    assert not problems, "\n".join(problems)

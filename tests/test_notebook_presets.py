"""Notebooks 01, 04 and 05 executed under the GPU presets, on the CPU, with stand-ins.

The stored notebooks are the tiny preset's; a renter opens them with
``VLMGRPO_PRESET=qwen2.5-vl-3b-24gb`` or ``qwen3-vl-4b-qlora``, whose branches (a kept run,
a real dataset, the asserts for other presets, 4-bit loading) nothing else executes. Here
each notebook runs as on a rented card, through its environment variables alone: the
preset, a tiny model of the preset's family as VLMGRPO_MODEL (loaded in 4 bits for the QLoRA
preset), a file in the real dataset's schema as VLMGRPO_DATASET, and a short run
(VLMGRPO_MAX_STEPS, VLMGRPO_EVAL_ROWS). The stand-ins write LaTeX and the problems hold it,
stray dollars included (`tests.latex_task`), as a real model's answers on the real dataset
do: every figure that draws them must survive it. Copies execute in a temporary folder; the stored
notebooks are left alone. Long (about a minute per preset), so VLMGRPO_SLOW=1 only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import needs_bitsandbytes, slow
from tests.test_notebook_outputs import DRAWS, WARNINGS, output_texts, source
from vlmgrpo import course, presets

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# 04 trains the run that 05 reloads: in this order, in one folder.
ORDER = ("01_rl_on_a_vlm.ipynb", "04_grpo_training.ipynb", "05_evaluation.ipynb")
STEPS, EVAL_ROWS = 2, 2  # of the fixture's 4 held-out rows
# Cells drawn on the colour task alone (04's loss-variant lab, 05's intervention on a think
# that names a hue): under a real dataset they draw nothing, by design.
COLOUR_TASK_ONLY = re.compile(r"^if (lab|task):", re.M)


def execute(path: Path, folder: Path) -> nbformat.NotebookNode:
    """`path` executed with `folder` as its working directory; fails on a cell's error."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{str(err)[-3000:]}")
    nbformat.write(notebook, folder / path.name)  # kept in the temporary folder, to read
    return notebook


@slow
@pytest.mark.parametrize(
    "name",
    ["qwen2.5-vl-3b-24gb", pytest.param("qwen3-vl-4b-qlora", marks=needs_bitsandbytes)],
)
def test_notebooks_run_under_a_gpu_preset(
    name, latex_stand_ins, latex_article_file, tmp_path, monkeypatch
):
    preset = presets.get_preset(name)
    stand_in = latex_stand_ins[preset.family]
    article_file = latex_article_file
    cache = tmp_path / "cache"  # stays empty unless a notebook builds the tiny model
    settings = {
        "VLMGRPO_PRESET": name,
        "VLMGRPO_MODEL": stand_in,
        "VLMGRPO_DATASET": str(article_file),
        "VLMGRPO_MAX_STEPS": str(STEPS),
        "VLMGRPO_EVAL_ROWS": str(EVAL_ROWS),
        "VLMGRPO_CACHE": str(cache),
        "OMP_NUM_THREADS": "1",  # the kernels share the machine's cores with pytest
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "notebooks"  # the notebooks' ../runs is then tmp_path/runs
    folder.mkdir()

    for notebook_name in ORDER:
        notebook = execute(NOTEBOOKS / notebook_name, folder)
        cells = [c for c in notebook.cells if c.cell_type == "code"]
        texts = [t for c in cells for o in c.outputs for t in output_texts(o)]
        assert not [t for t in texts if WARNINGS.search(t)], notebook_name
        if notebook_name != "05_evaluation.ipynb":  # 01 and 04 print a sampled group
            sampled = [line for t in texts for line in t.splitlines() if "</think>" in line]
            assert any("$" in line and "\\" in line for line in sampled), notebook_name
        for cell in cells:
            drew = any("image/png" in o.get("data", {}) for o in cell.outputs)
            if DRAWS.search(source(cell)):
                assert drew != bool(COLOUR_TASK_ONLY.search(source(cell))), source(cell)[:200]

    # The run that notebook 04 trained and 05 reloaded is the stand-in's, on the file, short.
    run_dir = tmp_path / "runs" / course.notebook_run_name("nb04", course.notebook_preset())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["preset"] == name and record["model"] == str(Path(stand_in).resolve())
    assert record["dataset"] == str(article_file.resolve())
    assert record["config"]["quantization"] == preset.quantization
    assert record["config"]["family"] == preset.family
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["steps"] == STEPS and result["n_eval"] == EVAL_ROWS
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert not cache.exists() or not os.listdir(cache), "a notebook built the tiny model"
    shutil.rmtree(tmp_path / "runs")  # checkpoints: megabytes no test reads again

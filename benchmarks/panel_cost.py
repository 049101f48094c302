"""What notebook 04's live panel costs: its 80 steps with and without `plots.TrainingPanel`.

    python benchmarks/panel_cost.py            # both runs, one after the other, in a kernel
    python benchmarks/panel_cost.py --steps 10 # a shorter check

The panel draws only inside a Jupyter kernel, so each run executes in one (nbclient), as
notebook 04's training cell does: `train.run` of the `tiny` preset, seed 42, with
`callbacks=[plots.TrainingPanel(every=5)]` or none, the tiny model already in the cache (the
first run builds it if not, before its clock starts). Prints each run's `train_seconds` (the
Trainer's steps alone) and the whole cell's seconds, and the machine's cores and torch threads.
Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import nbformat
from nbclient import NotebookClient

CELL = """
import json, time
from pathlib import Path
from vlmgrpo.course import setup
setup(versions=False)
from vlmgrpo import models, plots, presets, train
preset = presets.get_preset("tiny")
models.load_model(None, preset)  # built before the clock, if the cache lacks it
callbacks = [plots.TrainingPanel(every=5)] if {panel} else []
start = time.perf_counter()
result = train.run(preset, output_dir=Path({out!r}), overwrite=True, max_steps={steps},
                   callbacks=callbacks)
print(json.dumps({{"train_seconds": result["train_seconds"],
                  "cell_seconds": round(time.perf_counter() - start, 1),
                  "accuracy_after": result["accuracy_after"]}}))
"""


def run(panel: bool, steps: int, out: str) -> dict:
    """One run in a fresh kernel; what its cell printed last."""
    cell = nbformat.v4.new_code_cell(CELL.format(panel=panel, steps=steps, out=out))
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(notebook, timeout=3600, kernel_name="python3").execute()
    texts = [o.get("text", "") for o in notebook.cells[0].outputs if o.get("name") == "stdout"]
    return json.loads("".join(texts).strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80, help="GRPO steps per run (80)")
    args = parser.parse_args()
    import torch

    print(f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {time.ctime()}")
    with tempfile.TemporaryDirectory() as folder:
        for panel in (False, True):
            figures = run(panel, args.steps, os.path.join(folder, f"panel-{panel}"))
            name = "with the live panel    " if panel else "without it (bar, lines)"
            print(
                f"{name} train_seconds {figures['train_seconds']:6.1f}  cell "
                f"{figures['cell_seconds']:6.1f} s  accuracy after {figures['accuracy_after']}"
            )


if __name__ == "__main__":
    main()

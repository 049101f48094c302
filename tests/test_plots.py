"""Figures: importing the package chooses no matplotlib backend (notebooks keep theirs)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_package_leaves_the_backend_alone():
    code = "import matplotlib, vlmgrpo.plots, vlmgrpo.train; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg"


def test_plot_answers_gives_each_image_a_row_and_each_model_a_column():
    import matplotlib.pyplot as plt
    from PIL import Image

    from vlmgrpo import plots

    images = [Image.new("RGB", (84, 84), "red")] * 3
    right = {
        "completion": "<think>I see one red shape.</think><answer>red</answer>",
        "accuracy": 1.0,
        "solution": "red",
    }
    rambling = {
        "completion": "<think>" + "so many words " * 80 + "</think>",
        "accuracy": 0.0,
        "solution": "red",
    }
    fig = plots.plot_answers(images, {"base": [rambling] * 3, "tuned": [right] * 3}, lines=3)
    axes = fig.get_axes()
    assert len(axes) == 9  # 3 rows x (image + 2 models)
    texts = [t.get_text() for ax in axes for t in ax.texts]
    assert texts.count("answer: red  (right)") == 3
    assert texts.count("answer: (no answer)  (wrong, gold red)") == 3
    # A long reasoning is cut to three lines, the last one ending in an ellipsis.
    cut = [t for t in texts if t.startswith("so many")]
    assert cut and all(t.count("\n") == 2 and t.endswith("…") for t in cut)
    colours = {t.get_text(): t.get_color() for ax in axes for t in ax.texts}
    assert colours["answer: red  (right)"] == "tab:green"
    plt.close(fig)

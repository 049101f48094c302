"""Figures: importing the package chooses no matplotlib backend (notebooks keep theirs); the
live training panel."""

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


def test_a_sampled_control_byte_is_drawn_as_a_question_mark_without_a_warning():
    import warnings

    import matplotlib.pyplot as plt
    from PIL import Image

    from vlmgrpo import plots

    record = {"completion": "<think>I see\x1a red.</think><answer>r\x1aed</answer>",
              "accuracy": 0.0, "solution": "red"}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns of a glyph missing from the font
        fig = plots.plot_answers([Image.new("RGB", (84, 84), "red")], {"m": [record]})
        fig.canvas.draw()
    texts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    assert "I see? red." in texts and "answer: r?ed  (wrong, gold red)" in texts
    plt.close(fig)


def test_plot_answers_puts_captions_beside_the_images_keeping_their_line_breaks():
    import matplotlib.pyplot as plt
    from PIL import Image

    from vlmgrpo import plots

    images = [Image.new("RGB", (84, 84), "red")] * 2
    record = {"completion": "<think>red 7.</think><answer> 7</answer>", "accuracy": 1.0,
              "solution": "7"}  # fmt: skip
    captions = ["Prices: red 7,\nblue 4, green 1", "Prices: " + "purple 9, " * 6]
    fig = plots.plot_answers(images, {"tuned": [record] * 2}, captions=captions, lines=2)
    axes = fig.get_axes()
    assert len(axes) == 6  # 2 rows x (image + caption + 1 model)
    shown = [t.get_text() for ax in axes[1::3] for t in ax.texts]
    assert shown[0] == "Prices: red 7,\nblue 4, green 1"
    assert shown[1].count("\n") == 2  # wrapped at 22 characters, cut to lines + 1
    plt.close(fig)


def test_training_panel_draws_the_rewards_and_the_latest_group():
    from collections import defaultdict, deque
    from types import SimpleNamespace

    from PIL import Image

    from vlmgrpo import plots, prices

    image = Image.new("RGB", (84, 84), "red")
    question = prices.problem({"red": 7, "blue": 4})
    prompt = [
        {"role": "system", "content": [{"type": "text", "text": "instructions"}]},
        {"role": "user", "content": [{"type": "image", "image": image},
                                     {"type": "text", "text": question}]},
    ]  # fmt: skip
    texts = [prices.completion("red", 7), prices.completion("blue", 4)] * 2
    rewards = defaultdict(deque, {"format_reward": deque([1.0] * 4),
                                  "accuracy_reward": deque([1.0, 0.0] * 2)})  # fmt: skip
    logs = {
        "images": deque([[image]] * 4),
        "prompt": deque([prompt] * 4),
        "completion": deque([[{"role": "assistant", "content": t}] for t in texts]),
        "rewards": rewards,
    }
    panel = plots.TrainingPanel(every=2, width=30)
    panel.watch(SimpleNamespace(_logs=logs, num_generations=2))
    state = SimpleNamespace(global_step=1, max_steps=4)
    for step in (1, 2):
        state.global_step = step
        panel.on_log(None, state, None, logs={"loss": 0.0, "reward": 1.5 + step / 10})
    assert panel.history["step"] == [1, 2] and panel.history["reward"] == [1.6, 1.7]
    assert panel.handle is None  # outside a Jupyter kernel nothing is displayed
    fig = panel.figure(2, 4)
    curves, picture, text = fig.get_axes()
    assert [line.get_label() for line in curves.get_lines()] == ["format", "accuracy", "total"]
    assert picture.get_images()  # the group's image
    assert "Prices: red 7, blue 4." in text.get_title(loc="left")  # the user's turn only
    lines = text.texts
    assert len(lines) == 2  # one group: num_generations completions
    assert lines[0].get_text().startswith("2.0  …") and lines[0].get_text().endswith(
        "<answer> 7</answer>"
    )  # cut from the front: the answer shows
    assert [t.get_color() for t in lines] == ["tab:green", "tab:red"]
    # Summary logs (train_loss, no loss) add nothing.
    panel.on_log(None, state, None, logs={"train_loss": 0.1})
    assert len(panel.history["step"]) == 2

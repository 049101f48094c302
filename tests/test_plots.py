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


def test_plot_before_after_draws_a_grey_and_a_blue_bar_per_measure():
    import matplotlib.pyplot as plt

    from vlmgrpo import plots

    rows = {"right answer": (0.25, 1.0), "follows a planted think": (0.0, 0.5)}
    fig = plots.plot_before_after(rows, "share of held-out questions")
    ax = fig.get_axes()[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == [0.25, 0.0, 1.0, 0.5]  # before, then after, in the rows' order
    tops = [bar.get_y() for bar in ax.patches]  # the y axis is inverted: smaller is higher
    assert tops[0] < tops[2] < tops[1] < tops[3]  # row 1 before, its after, row 2 before, ...
    assert ax.yaxis_inverted()
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rows)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["before RL", "after RL"]
    assert ax.get_xlabel() == "share of held-out questions" and ax.get_xlim() == (0, 1)
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


# What real models write and the real dataset holds: dollars (paired and not), backslashes,
# powers, subscripts, braces. Each would be parsed as mathtext if drawn as markup; a lone or
# unbalanced `$` makes matplotlib raise mid-training.
LATEX_TEXTS = (
    r"The area is $\frac{1}{2} \cdot 6 \cdot 4 = 12$, so $S_{ABC}$ is \boxed{12}",
    r"costs $5, not $6",
    r"$x^2 + y_1 = \sqrt{3}$ and then $",
    r"}{ \left( \frac{\pi}{3} \right) ^_ $$ \$ 50%",
)


def _drawn_texts(fig) -> list:
    """Every text artist of a figure: axis titles, tick labels and texts placed in axes."""
    artists = []
    for ax in fig.get_axes():
        artists += list(ax.texts)
        artists += [ax.title, ax._left_title, ax._right_title]
        artists += ax.get_xticklabels() + ax.get_yticklabels()
    return [a for a in artists if a.get_text()]


def _assert_literal(fig, wanted: list[str]) -> None:
    """The figure renders, and every text holding data is drawn as written, no mathtext."""
    fig.canvas.draw()  # mathtext would raise here on an unbalanced `$`
    texts = _drawn_texts(fig)
    for text in texts:
        if any(mark in text.get_text() for mark in "$\\^_{}"):
            assert text.get_parse_math() is False and text.get_usetex() is False, text
    shown = "\n".join(t.get_text() for t in texts)
    for piece in wanted:
        assert piece in shown, (piece, shown)


def test_text_from_a_model_or_a_dataset_is_drawn_literally_in_every_figure():
    from collections import defaultdict, deque
    from types import SimpleNamespace

    import matplotlib.pyplot as plt
    from PIL import Image

    from vlmgrpo import plots

    image = Image.new("RGB", (84, 84), "red")
    completions = [f"<think>{t}</think><answer>{t[-12:]}</answer>" for t in LATEX_TEXTS]
    records = [{"completion": c, "accuracy": float(i % 2), "solution": LATEX_TEXTS[i]}
               for i, c in enumerate(completions)]  # fmt: skip
    fig = plots.plot_answers([image] * 4, {"model": records}, captions=list(LATEX_TEXTS))
    _assert_literal(fig, ["costs $5, not $6", "$x^2 + y_1 = \\sqrt{3}$ and then $"])
    plt.close(fig)

    fig = plots.plot_group(image, LATEX_TEXTS[0], completions, [2, 1, 0, 1], [True, False] * 2)
    _assert_literal(fig, ["costs $5, not $6", "The area is $\\frac{1}{2}"])
    plt.close(fig)

    fig = plots.plot_images([image] * 4, list(LATEX_TEXTS))
    _assert_literal(fig, list(LATEX_TEXTS[:3]))
    plt.close(fig)

    fig = plots.plot_before_after({LATEX_TEXTS[0]: (0.1, 0.9)})
    _assert_literal(fig, [LATEX_TEXTS[0]])
    plt.close(fig)

    prompt = [{"role": "user", "content": [{"type": "image", "image": image},
                                           {"type": "text", "text": LATEX_TEXTS[3]}]}]  # fmt: skip
    logs = {
        "images": deque([[image]] * 4),
        "prompt": deque([prompt] * 4),
        "completion": deque([[{"role": "assistant", "content": c}] for c in completions]),
        "rewards": defaultdict(deque, {"accuracy_reward": deque([1.0, 0.0] * 2)}),
    }
    panel = plots.TrainingPanel(width=60)
    panel.watch(SimpleNamespace(_logs=logs, num_generations=4))
    panel.on_log(None, SimpleNamespace(global_step=1, max_steps=4), None, logs={"loss": 0.0})
    fig = panel.figure(1, 4)
    _assert_literal(fig, ["costs $5, not $6", "\\left( \\frac{\\pi}{3}"])


def test_the_live_panel_redraws_at_most_max_draws_times_however_long_the_run():
    from types import SimpleNamespace

    from vlmgrpo import plots

    panel = plots.TrainingPanel(every=5)
    drawn = []
    panel.draw = lambda step, max_steps: drawn.append(step)
    state = SimpleNamespace(global_step=0, max_steps=5000)
    for step in range(1, 5001):
        state.global_step = step
        panel.on_log(None, state, None, logs={"loss": 0.0})
    assert len(drawn) <= plots.TrainingPanel.MAX_DRAWS + 2 and drawn[-1] == 5000
    short = plots.TrainingPanel(every=5)
    short.draw = lambda step, max_steps: drawn.append(step)
    drawn.clear()
    for step in range(1, 81):
        short.on_log(None, SimpleNamespace(global_step=step, max_steps=80), None, {"loss": 0})
    assert drawn == [1, *range(5, 81, 5)]  # the stored notebooks' 80 steps: every 5


def test_the_dashboard_says_why_a_clipped_fraction_is_flat(tmp_path):
    import matplotlib.pyplot as plt

    from vlmgrpo import plots

    def dashboard(clipped):
        path = tmp_path / "metrics.csv"
        rows = ["step,rewards/format_reward/mean,rewards/accuracy_reward/mean,reward,"
                "clip_ratio/region_mean"]  # fmt: skip
        rows += [f"{s},1.0,{s / 10},{1 + s / 10},{clipped(s)}" for s in range(1, 11)]
        path.write_text("\n".join(rows) + "\n")
        fig = plots.plot_metrics(path)
        rewards, clip = fig.get_axes()[0], fig.get_axes()[1]
        texts = [t.get_text() for t in clip.texts]
        plt.close(fig)
        return rewards, texts

    rewards, texts = dashboard(lambda s: 0.0)
    assert texts and texts[0].startswith("0 at every step")
    assert rewards.get_ylim()[1] > 2.0 + 0.5  # headroom for the legend above the total's end
    assert dashboard(lambda s: 0.01 * (s % 3))[1] == []  # a clip that moves needs no note

"""Figures of a run, drawn from its metrics.csv, and a live panel of a run in a notebook.

Text that came from a model or a dataset (completions, problems, golds) is data, never
markup: it is drawn with `LITERAL`, so that `$x^2$`, `\\frac{1}{2}` or an unbalanced `$` show
as written instead of being parsed as mathtext (which raises on a stray `$` and silently
renders a different string otherwise).
"""

from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

# No backend is chosen here: a notebook keeps its inline figures, and the CLI picks Agg itself.
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from transformers import TrainerCallback

from vlmgrpo.rewards import extract_answer, gold_answer

# Keyword arguments of matplotlib's `text` and `set_title` that draw a string as it is: no
# mathtext, and no LaTeX even where the user's matplotlibrc turns `text.usetex` on.
LITERAL = {"parse_math": False, "usetex": False}

REWARD_COLUMNS = {
    "rewards/format_reward/mean": "format",
    "rewards/accuracy_reward/mean": "accuracy",
    "reward": "total",
}


def read_metrics(path: str | Path) -> dict[str, list[float]]:
    """metrics.csv as columns of floats (empty cells skipped as NaN)."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        k: [float(r[k]) if r[k] else float("nan") for r in rows] for k in (rows[0] if rows else {})
    }


def plot_reward_curve(metrics_csv: str | Path, out: str | Path | None = None, dpi: int = 80):
    """Format, accuracy and total reward per step; saved to `out` when given."""
    m = read_metrics(metrics_csv)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for column, label in REWARD_COLUMNS.items():
        if column in m:
            ax.plot(m["step"], m[column], label=label)
    ax.set(xlabel="step", ylabel="mean reward", title="GRPO rewards")
    ax.legend()
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
    return fig


# The panels of a run's dashboard, in reading order: (title, metrics.csv columns).
PANELS = (
    ("rewards", tuple(REWARD_COLUMNS)),
    ("reward std within groups", ("reward_std",)),
    ("groups with equal rewards", ("frac_reward_zero_std",)),
    ("completion length (tokens)", ("completions/mean_length",)),
    ("entropy (nats per token)", ("entropy",)),
    ("clipped fraction", ("clip_ratio/region_mean",)),
    ("KL to the reference", ("kl",)),
    ("loss (not a progress signal)", ("loss",)),
)


def plot_metrics(
    metrics_csv: str | Path, out: str | Path | None = None, dpi: int = 80, columns: int = 4
):
    """A panel per training signal in metrics.csv (KL only when the run had beta > 0)."""
    m = read_metrics(metrics_csv)
    panels = [(title, [c for c in cols if c in m]) for title, cols in PANELS]
    panels = [(title, cols) for title, cols in panels if cols]
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, cols) in zip(axes.flat, panels, strict=False):
        for column in cols:
            ax.plot(m["step"], m[column], label=REWARD_COLUMNS.get(column, column))
        ax.set(title=title, xlabel="step")
        values = [v for c in cols for v in m[c] if v == v]  # v != v: NaN, not logged
        if len(cols) > 1:  # the rewards: room above the curves for the legend, off their ends
            top = max(values, default=1.0)
            ax.set_ylim(top=top + 0.35 * max(top, 1e-3))
            ax.legend(
                fontsize=8,
                loc="upper center",
                ncol=len(cols),
                frameon=False,
                handlelength=1.2,
                columnspacing=1.0,
            )
        if cols == ["clip_ratio/region_mean"] and values and not any(values):
            ax.text(
                0.5,
                0.72,
                "0 at every step: one pass per\nbatch, the ratio is 1 when\nthe loss is computed",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="0.35",
            )
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
    return fig


def _printable(text: str) -> str:
    """`text` on one line, each character no font can draw (a sampled control byte) as "?"."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))


def _keep_end(text: str, width: int) -> str:
    """`text` cut to `width` characters from the front, where a completion's end is kept."""
    return text if len(text) <= width else "…" + text[-width + 1 :]


def _split(completion: str) -> tuple[str, str]:
    """A completion's reasoning ("" when none) and answer ("(no answer)"), each printable."""
    think = completion.split("<think>")[-1].split("</think>")[0]
    return _printable(think), _printable(extract_answer(completion) or "(no answer)")


def _think_and_answer(completion: str, width: int, lines: int) -> tuple[str, str]:
    """The completion's reasoning wrapped to `lines` lines of `width`, and its answer."""
    think, answer = _split(completion)
    wrapped = textwrap.wrap(think or "(no reasoning)", width) or [""]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], wrapped[lines - 1][: width - 1] + "…"]
    return "\n".join(wrapped), answer


def plot_answers(
    images: list,
    models: dict[str, list[dict]],
    dpi: int = 80,
    width: int = 40,
    lines: int = 3,
    captions: list[str] | None = None,
):
    """One image per row; beside it, each model's reasoning and answer, marked right or wrong.

    `models` maps a label ("base model", "after RL") to the evaluation records of the same
    images, in order. Long reasoning is wrapped and cut to `lines` lines, so that a real
    model's page of thought fits a row as well as the tiny model's one sentence. `captions`,
    one per image, go in a column beside the images (the price list of each question, say),
    wrapped at 22 characters and at their own line breaks.
    """
    # Rows as tall as the longest reasoning shown needs, so a one-line think leaves no gap.
    used = max(
        (
            _think_and_answer(r["completion"], width, lines)[0].count("\n") + 1
            for records in models.values()
            for r in records[: len(images)]
        ),
        default=1,
    )
    row_height = max(0.95, 0.3 + 0.42 * used)  # the think above the middle, the answer below
    extra = 1 if captions else 0
    fig, axes = plt.subplots(
        len(images),
        1 + extra + len(models),
        figsize=(1.4 + 2.4 * extra + 4.8 * len(models), row_height * len(images) + 0.4),
        gridspec_kw={"width_ratios": [1.0, *[2.0] * extra, *[3.6] * len(models)]},
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for column, label in enumerate(models, start=1 + extra):
        axes[0, column].set_title(label, loc="left", fontsize=13, fontweight="bold")
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        if captions:
            parts = captions[row].split("\n")  # its own line breaks are kept
            caption = "\n".join([w for p in parts for w in textwrap.wrap(p, 22)][: lines + 1])
            axes[row, 1].text(0, 0.5, caption, transform=axes[row, 1].transAxes, va="center",
                              fontsize=11, **LITERAL)  # fmt: skip
        for column, records in enumerate(models.values(), start=1 + extra):
            record = records[row]
            think, answer = _think_and_answer(record["completion"], width, lines)
            right = record["accuracy"] == 1.0
            ax = axes[row, column]
            # The reasoning ends and the answer starts at the row's middle, beside the image.
            ax.text(0, 0.54, think, transform=ax.transAxes, va="bottom", fontsize=12, **LITERAL)
            verdict = "right" if right else f"wrong, gold {gold_answer(record['solution'])}"
            ax.text(
                0,
                0.46,
                f"answer: {answer}  ({verdict})",
                transform=ax.transAxes,
                va="top",
                fontsize=12,
                fontweight="bold",
                color="tab:green" if right else "tab:red",
                **LITERAL,
            )
    fig.set_dpi(dpi)
    fig.tight_layout(h_pad=0.6)
    return fig


def plot_images(images: list, titles: list[str], size: float = 1.5, fontsize: int = 9):
    """A row of images, each under its title drawn as written (a dataset's gold, say)."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4))
    for ax, image, title in zip(list(getattr(axes, "flat", [axes])), images, titles, strict=True):
        ax.imshow(image)
        ax.axis("off")
        ax.set_title(_printable(title), fontsize=fontsize, **LITERAL)
    fig.tight_layout()
    return fig


def plot_before_after(
    rows: dict[str, tuple[float, float]], xlabel: str = "share of held-out answers"
):
    """Shares before and after RL, a pair of bars per measure: {label: (before, after)}."""
    fig, ax = plt.subplots(figsize=(8.5, 0.6 + 0.55 * len(rows)))
    y = list(range(len(rows)))
    before, after = zip(*rows.values(), strict=True)
    # The axis runs top down (inverted below): before RL above after RL, as the legend reads.
    ax.barh([v - 0.2 for v in y], before, 0.4, label="before RL", color="grey")
    ax.barh([v + 0.2 for v in y], after, 0.4, label="after RL", color="tab:blue")
    ax.set_yticks(y, [_printable(label) for label in rows], **LITERAL)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not on them
    fig.tight_layout()
    return fig


def plot_group(
    image,
    problem: str,
    completions: list[str],
    rewards: list[float],
    right: list[bool],
    width: int = 46,
):
    """One sampled group: the image and its problem, then each completion's reward, reasoning
    and answer, green where the answer is right, red where wrong.

    A reasoning longer than `width` characters keeps its end, where its conclusion is; the
    problem is shortened to fit above the image.
    """
    fig, (ax_img, ax_txt) = plt.subplots(
        1, 2, figsize=(10, 0.6 + 0.33 * max(len(completions), 6)),
        gridspec_kw={"width_ratios": [1, 4.2]},
    )  # fmt: skip
    ax_img.imshow(image)
    title = textwrap.shorten(_printable(problem), 60, placeholder=" …")
    ax_img.set_title("\n".join(textwrap.wrap(title, 26)), fontsize=10, **LITERAL)
    ax_img.axis("off")
    ax_txt.axis("off")
    for i, (text, reward, ok) in enumerate(zip(completions, rewards, right, strict=True)):
        think, answer = _split(text)
        think = _keep_end(think, width)
        ax_txt.text(
            0, 1 - i / len(completions), f"reward {reward:.0f}  {think:{width}s} -> {answer}",
            fontsize=10, va="top", family="monospace",
            color="green" if ok else "red", **LITERAL,
        )  # fmt: skip
    fig.tight_layout()
    return fig


def _text(message) -> str:
    """The text of a prompt's or completion's messages (TRL keeps conversations as lists)."""
    if isinstance(message, str):
        return message
    parts = []
    for turn in message:
        content = turn["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [part["text"] for part in content if part.get("type") == "text"]
    return " ".join(p for p in parts if p)


class TrainingPanel(TrainerCallback):
    """A GRPO run watched live in a notebook: its reward curves and one group it just sampled.

    Every `every` steps (and at the last; at most `MAX_DRAWS` times a run) one figure is
    redrawn in place: the mean rewards per
    step so far, and the first group of the latest batch (its image, its question, each
    completion with its total reward, green where the answer is right, red where wrong). The
    last frame stays in the notebook as a figure. Outside a Jupyter kernel it draws nothing,
    so the command line and scripts are unchanged. Pass it to
    `vlmgrpo.train.run(..., callbacks=[TrainingPanel()])`.
    """

    MAX_DRAWS = 50  # per run: a long run on a GPU redraws less often, not more
    shows_steps = True  # the run's log then prints no step lines beside it (vlmgrpo.runs)

    def __init__(self, every: int = 5, width: int = 70, dpi: int = 80):
        self.every, self.width, self.dpi = every, width, dpi
        self.trainer = None
        self.history: dict[str, list[float]] = {}
        self.handle = None

    def watch(self, trainer) -> None:
        """The trainer whose sampled groups to show (`vlmgrpo.train.build_trainer` calls it)."""
        self.trainer = trainer

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # the final summary log has train_loss instead
            return
        self.history.setdefault("step", []).append(state.global_step)
        for column in REWARD_COLUMNS:
            self.history.setdefault(column, []).append(logs.get(column, float("nan")))
        last = state.global_step >= state.max_steps
        every = max(self.every, -(-state.max_steps // self.MAX_DRAWS))
        if state.global_step % every == 0 or last or len(self.history["step"]) == 1:
            self.draw(state.global_step, state.max_steps)

    def group(self) -> dict | None:
        """The first group of the trainer's latest batch: image, question, completions, rewards."""
        logs = getattr(self.trainer, "_logs", None)  # TRL 1.16 keeps the latest batch there
        if not logs or not logs["completion"]:
            return None
        size = self.trainer.num_generations
        rewards = [sum(values) for values in zip(*logs["rewards"].values(), strict=True)]
        accuracy = list(logs["rewards"].get("accuracy_reward", rewards))
        images = list(logs["images"])[:1] if logs["images"] else []
        return {
            "image": images[0][0] if images and images[0] else None,
            "question": _text(list(logs["prompt"])[0][-1:]),  # the user's turn
            "completions": [_text(c) for c in list(logs["completion"])[:size]],
            "rewards": rewards[:size],
            "right": [value == 1 for value in accuracy[:size]],
        }

    def figure(self, step: int, max_steps: int):
        """The panel's figure now (not drawn by pyplot, so a notebook shows it only once)."""
        fig = Figure(figsize=(12, 3.6), dpi=self.dpi)
        grid = fig.add_gridspec(1, 3, width_ratios=[3.2, 1.0, 5.0])
        curves = fig.add_subplot(grid[0])
        for column, label in REWARD_COLUMNS.items():
            curves.plot(self.history["step"], self.history[column], label=label)
        curves.set(xlim=(0, max(max_steps, 1)), ylim=(-0.05, 2.05), xlabel="step")
        curves.set_title(f"mean reward, step {step}/{max_steps}", fontsize=11, loc="left")
        curves.legend(fontsize=9, loc="lower right")
        picture, text = fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
        picture.axis("off")
        text.axis("off")
        group = self.group()
        if group is not None:
            if group["image"] is not None:
                picture.imshow(group["image"])
            title = f"one sampled group: {_printable(group['question'])}"  # in two lines at most
            title = textwrap.fill(textwrap.shorten(title, 180, placeholder=" …"), 90)
            text.set_title(title, fontsize=10, loc="left", **LITERAL)
            rows = len(group["completions"])
            for row, (completion, reward, right) in enumerate(
                zip(group["completions"], group["rewards"], group["right"], strict=True)
            ):
                shown = _keep_end(_printable(completion), self.width)  # the answer shows
                text.text(
                    0, 1 - (row + 0.5) / rows, f"{reward:.1f}  {shown}",
                    transform=text.transAxes, va="center", fontsize=10, family="monospace",
                    color="tab:green" if right else "tab:red", **LITERAL,
                )  # fmt: skip
        fig.tight_layout()
        return fig

    def draw(self, step: int, max_steps: int) -> None:
        """Redraw the panel in the notebook's output, in place."""
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if getattr(get_ipython(), "kernel", None) is None:
            return
        png = io.BytesIO()  # a PNG of its own: shown whatever matplotlib backend is active
        self.figure(step, max_steps).savefig(png, format="png")
        if self.handle is None:
            self.handle = display(Image(data=png.getvalue()), display_id=True)
        else:
            self.handle.update(Image(data=png.getvalue()))

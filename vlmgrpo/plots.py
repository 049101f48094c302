"""Figures of a run, drawn from its metrics.csv."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

# No backend is chosen here: a notebook keeps its inline figures, and the CLI picks Agg itself.
import matplotlib.pyplot as plt

from vlmgrpo.rewards import extract_answer

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
        if len(cols) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=dpi)
        plt.close(fig)
    return fig


def _think_and_answer(completion: str, width: int, lines: int) -> tuple[str, str]:
    """The completion's reasoning wrapped to `lines` lines of `width`, and its answer."""
    think = completion.split("<think>")[-1].split("</think>")[0].strip() or "(no reasoning)"
    wrapped = textwrap.wrap(" ".join(think.split()), width) or [""]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], wrapped[lines - 1][: width - 1] + "…"]
    return "\n".join(wrapped), extract_answer(completion) or "(no answer)"


def plot_answers(
    images: list, models: dict[str, list[dict]], dpi: int = 80, width: int = 40, lines: int = 3
):
    """One image per row; beside it, each model's reasoning and answer, marked right or wrong.

    `models` maps a label ("base model", "after RL") to the evaluation records of the same
    images, in order. Long reasoning is wrapped and cut to `lines` lines, so that a real
    model's page of thought fits a row as well as the tiny model's one sentence.
    """
    row_height = 0.35 + 0.22 * (lines + 1)
    fig, axes = plt.subplots(
        len(images),
        1 + len(models),
        figsize=(1.4 + 4.8 * len(models), row_height * len(images) + 0.4),
        gridspec_kw={"width_ratios": [1.0, *[3.6] * len(models)]},
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for column, label in enumerate(models, start=1):
        axes[0, column].set_title(label, loc="left", fontsize=13, fontweight="bold")
    for row, image in enumerate(images):
        axes[row, 0].imshow(image)
        for column, records in enumerate(models.values(), start=1):
            record = records[row]
            think, answer = _think_and_answer(record["completion"], width, lines)
            right = record["accuracy"] == 1.0
            ax = axes[row, column]
            ax.text(0, 0.95, think, transform=ax.transAxes, va="top", fontsize=12)
            verdict = "right" if right else f"wrong, gold {record['solution']}"
            ax.text(
                0,
                0.02,
                f"answer: {answer}  ({verdict})",
                transform=ax.transAxes,
                va="bottom",
                fontsize=12,
                fontweight="bold",
                color="tab:green" if right else "tab:red",
            )
    fig.set_dpi(dpi)
    fig.tight_layout(h_pad=0.6)
    return fig

"""Figures of a run, drawn from its metrics.csv."""

from __future__ import annotations

import csv
from pathlib import Path

# No backend is chosen here: a notebook keeps its inline figures, and the CLI picks Agg itself.
import matplotlib.pyplot as plt

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


def plot_answer_grid(images: list, records: list[dict], columns: int = 4, dpi: int = 80):
    """Images with the model's completion under each, titled right or wrong."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, record in zip(axes.flat, images, records, strict=False):
        ax.imshow(image)
        right = record["accuracy"] == 1.0
        ax.set_title(
            f"{'right' if right else 'wrong'} (gold: {record['solution']})",
            color="green" if right else "red",
            fontsize=9,
        )
        text = record["completion"].replace("</think>", "</think>\n")
        ax.text(
            0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=7, wrap=True
        )
    fig.set_dpi(dpi)
    fig.tight_layout()
    return fig

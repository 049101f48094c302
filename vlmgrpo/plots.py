"""Figures of a run, drawn from its metrics.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # also works on a machine with no screen
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

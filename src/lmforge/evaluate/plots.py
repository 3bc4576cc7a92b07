"""Evaluation figures for the report: confusion matrices of the multiple-choice tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def confusion_figure(cm: list[list[int]], labels: list[str], out: Path, title: str,
                     xlabel: str = "predicted", ylabel: str = "true") -> Path:
    """Counts in each cell, shaded by the share of the row (the true class's recall pattern)."""
    counts = np.asarray(cm, dtype=float)
    share = counts / np.maximum(1, counts.sum(1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels)), dpi=110)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def task_confusion_figures(evaluation: dict[str, Any] | None, folder: Path) -> dict[str, str]:
    """One confusion-matrix figure per task (gold position vs chosen position); file names by task."""
    out: dict[str, str] = {}
    for name, task in ((evaluation or {}).get("tasks") or {}).items():
        cls = task.get("classification")
        if not cls:
            continue
        path = confusion_figure(cls["confusion_matrix"], cls["labels"], folder / f"confusion_{name}.png",
                                f"{name}: true choice vs chosen (acc)", "chosen position", "true position")
        out[name] = path.name
    return out

"""`lmforge compare monitoring` (course topic 8): each metrics sink added to the one that is always
on (metrics.jsonl), on the same short training logged at every step: wall time per step, its
overhead against JSONL alone, and the files each sink writes. A sink whose package is not
installed gets a row that says so instead of a number.

Overhead is a difference of two noisy timings on a shared machine: the seeds run interleaved
(every arm once, then every arm again) and the table gives mean ± std, so a difference smaller
than the spread reads as none.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from lmforge.compare.cells import mean_std, pm, sweep
from lmforge.compare.output import pyplot, save_cell, save_figure, write_table

NAME = "monitoring"
COLUMNS = ["sink", "shows", "seeds", "ms/step", "overhead vs JSONL", "files written", "KiB written"]
EVERY_STEP = ["train.log_interval=1"]
SINKS: dict[str, tuple[list[str], str, str | None]] = {
    # arm: (keys, what it shows, package it needs)
    "jsonl": ([], "metrics.jsonl: one JSON line per logged step and eval; read by report, watch, pandas", None),
    "console": (["monitor.console=lines"], "a line per logged step on the terminal: loss, lr, tokens/s, ETA",
                None),
    "tensorboard": (["monitor.tensorboard=true"], "scalar curves, hyperparameters and text in TensorBoard's UI",
                    "tensorboard"),
    "wandb offline": (["monitor.wandb=true", "monitor.wandb_mode=offline"],
                      "a W&B run folder (wandb/), synced later with `wandb sync`; nothing leaves the machine",
                      "wandb"),
    "mlflow": (["monitor.mlflow=true"], "an MLflow run in a SQLite store: metrics, params, the run's UI",
               "mlflow"),
    "stats": (["monitor.stats_interval=1"], "stats.jsonl: per-block gradient norm, activations, update ratio",
              None),
}


def installed(package: str | None) -> bool:
    return package is None or importlib.util.find_spec(package) is not None


def files_written(folder: Path) -> tuple[int, float]:
    """Files a cell wrote (links to the base run and its config aside): count and KiB."""
    import os

    files = [Path(d) / f for d, _, names in os.walk(folder) for f in names]  # walk does not enter links
    files = [p for p in files if not p.is_symlink() and p.name != "config.yaml"]
    return len(files), sum(p.stat().st_size for p in files) / 1024


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Wall time per step for each sink, with one standard deviation over seeds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    names = [r["arm"] for r in rows]
    ax.bar(range(len(rows)), [r["ms"] for r in rows], yerr=[r["ms_std"] for r in rows], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), names, rotation=15)
    ax.set_ylabel("wall time per step (ms)")
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, path)


def run(size: str, out: Path, overrides: list[str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> dict[str, Any]:
    present = {arm: keys + EVERY_STEP for arm, (keys, _, pkg) in SINKS.items() if installed(pkg)}
    wanted = [a for a in (only or SINKS) if a in present]
    _, by_arm = sweep(NAME, size, present, out, overrides, wanted if only else None, seeds)
    base_ms = mean_std([c["values"]["ms_per_step"] for c in by_arm.get("jsonl", [])])[0]
    rows, plotted = [], []
    for arm, (_, shows, pkg) in SINKS.items():
        if only and arm not in only:
            continue
        if arm not in by_arm:
            rows.append([arm, shows, 0, "-", f"not installed (pip install {pkg})", "-", "-"])
            continue
        cells = by_arm[arm]
        ms = [c["values"]["ms_per_step"] for c in cells]
        m, s = mean_std(ms)
        first = cells[0]
        if "files_written" not in first["values"]:
            count, kib = files_written(out / "cells" / f"{arm}-s{first['seed']}")
            first["values"]["files_written"], first["values"]["kib_written"] = count, kib
            save_cell(out, first)
        count, kib = first["values"]["files_written"], first["values"]["kib_written"]
        over = f"{100 * (m - base_ms) / base_ms:+.0f}%" if arm != "jsonl" and not math.isnan(base_ms) else "-"
        rows.append([arm, shows, len(cells), pm(ms, 1), over, count, round(kib, 1)])
        plotted.append({"arm": arm, "ms": m, "ms_std": s})
    notes = [("every arm logs at every step (train.log_interval=1) on the same model and data; JSONL is always "
             "on, each other arm adds one sink; ± is one standard deviation over seeds run interleaved; "
             "a sink's start-up (W&B starts a service process) is not in the per-step time; files written: "
             "the first seed's cell folder")]
    return write_table(out, NAME, "monitoring: each sink's overhead and files", COLUMNS, rows,
                       [c for cells in by_arm.values() for c in cells], lambda p: figure(plotted, p), notes,
                       {"size": size})

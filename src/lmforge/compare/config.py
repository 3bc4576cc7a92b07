"""`lmforge compare config` (course topic 6): one training setting changed at a time against a base
(batch size, learning rate, optimizer, schedule), each arm with the same number of steps: final
training loss, validation bits per byte, tokens per second and peak resident memory.

The batch arms see more or fewer tokens in the same steps; the table prints the tokens seen, so
the comparison is per step, and the tokens column says what that costs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmforge.compare.cells import mean_std, pm, size_config, sweep
from lmforge.compare.output import pyplot, save_figure, write_table

NAME = "config"
COLUMNS = ["arm", "changed", "seeds", "final train loss", "val bits/byte", "tokens seen", "tokens/s",
           "added peak MiB"]


def arms(size: str, overrides: list[str]) -> dict[str, list[str]]:
    """Each arm's keys, relative to the base config's batch and learning rate."""
    t = size_config(size, overrides).train
    return {
        "base": [],
        "batch x0.5": [f"train.batch_size={max(1, t.batch_size // 2)}"],
        "batch x2": [f"train.batch_size={t.batch_size * 2}"],
        "lr x0.3": [f"train.lr={t.lr * 0.3:.3g}", f"train.min_lr={t.min_lr * 0.3:.3g}"],
        "lr x3": [f"train.lr={t.lr * 3:.3g}", f"train.min_lr={t.min_lr * 3:.3g}"],
        # SGD needs a larger step than Adam's (no per-parameter scaling); Lion a smaller one
        # (Chen et al. 2023 suggest 3-10x below AdamW's)
        "sgd": ["train.optimizer=sgd", "train.lr=0.3", "train.min_lr=0.03"],
        "lion": ["train.optimizer=lion", f"train.lr={t.lr / 10:.3g}", f"train.min_lr={t.min_lr / 10:.3g}"],
        "constant schedule": ["train.schedule=constant"],
        "linear schedule": ["train.schedule=linear"],
        "wsd schedule": ["train.schedule=wsd"],
    }


def figure(by_arm: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Training loss against step, one line per arm (the first seed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    for arm, cells in by_arm.items():
        curve = cells[0]["values"]["curve"]
        ax.plot([s["step"] for s in curve], [s["loss"] for s in curve], label=arm, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def run(size: str, out: Path, overrides: list[str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> dict[str, Any]:
    keys = arms(size, overrides)
    _, by_arm = sweep(NAME, size, keys, out, overrides, only, seeds)
    rows = []
    for arm, cells in by_arm.items():
        v = [c["values"] for c in cells]
        rows.append([arm, ", ".join(keys[arm]) or "-", len(cells), pm([x["final_loss"] for x in v]),
                     pm([x["val_bpb"] for x in v]), v[0]["tokens"], round(mean_std([x["tokens_per_s"] for x in v])[0]),
                     round(mean_std([x["added_peak_mib"] for x in v])[0], 1)])
    steps = next(iter(by_arm.values()))[0]["values"]["budget_steps"]
    notes = [(f"every arm runs {steps} steps; ± is one standard deviation over seeds; tokens/s and memory "
             "depend on the machine and its load (added peak: the process's peak resident memory from building the model to the end of training, above what it held before; memory freed by an earlier arm and reused is not seen, so small models read near 0)")]
    return write_table(out, NAME, "training configuration: one setting changed at a time", COLUMNS, rows,
                       [c for cells in by_arm.values() for c in cells], lambda p: figure(by_arm, p), notes,
                       {"size": size})

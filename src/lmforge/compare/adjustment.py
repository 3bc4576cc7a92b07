"""`lmforge compare adjustment` (course topic 9): ways to change the learning rate, or stop, while
training runs, all on the same step budget: a fixed LR, step decay, cosine, cyclical (triangular,
Smith 2017), reduce-on-plateau, early stopping, and a live `lmforge ctl` change sent halfway.
Final training loss, validation loss and bits per byte, the LR at the end, and the steps an
adjustment saved by stopping early.

The live change goes through the same file protocol `lmforge ctl RUN set train.lr=...` uses
(monitor/control.py): a command file is dropped halfway and the running trainer's controller
picks it up at its next logged step, exactly as it would from another terminal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.compare.cells import pm, size_config, sweep
from lmforge.compare.output import pyplot, save_cell, save_figure, write_table
from lmforge.config.schema import Config
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback, Trainer

NAME = "adjustment"
COLUMNS = ["arm", "keys", "seeds", "steps run", "steps saved", "final train loss", "val loss", "val bits/byte",
           "final lr", "events"]


def arms(size: str, overrides: list[str]) -> dict[str, list[str]]:
    t = size_config(size, overrides).train
    n, checks = t.steps, max(1, t.steps // 10)
    every = [f"train.eval_interval={checks}"]  # every arm validates ten times, so early stopping can act
    return {
        "fixed lr": ["train.schedule=constant", *every],
        "step decay": ["train.schedule=step", f"train.step_size={max(1, n // 3)}", "train.gamma=0.3", *every],
        "cosine": ["train.schedule=cosine", *every],
        "cyclical": ["train.schedule=triangular", f"train.step_size={max(1, n // 6)}", *every],
        "reduce on plateau": ["train.schedule=constant", "monitor.plateau.enabled=true", "monitor.plateau.metric=loss",
                              "monitor.plateau.factor=0.3", f"monitor.plateau.patience={max(2, n // (10 * t.log_interval))}",
                              *every],
        # stop when validation improves by less than 0.02 nats twice in a row (Prechelt 1998's
        # patience criterion with a minimum gain)
        "early stopping": ["train.schedule=cosine", "monitor.early_stop.enabled=true", "monitor.early_stop.patience=2",
                           "monitor.early_stop.min_delta=0.02", *every],
        "live ctl lr/10": ["train.schedule=constant", "monitor.control=true", *every],
    }


class LiveChange(Callback):
    """Halfway through, send `set train.lr=LR/10` through the control file protocol."""

    def __init__(self, run: RunDir, lr: float) -> None:
        self.run, self.lr, self.sent = run, lr, False

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        from lmforge.monitor.control import send

        if not self.sent and trainer.step >= trainer.cfg.steps // 2:
            send(self.run, "set", {"train.lr": self.lr / 10}, reason="compare adjustment: LR / 10 halfway")
            self.sent = True


def live_hook(arm: str, cfg: Config) -> Callable[[RunDir], list[Callback]] | None:
    return (lambda run: [LiveChange(run, cfg.train.lr)]) if arm.startswith("live ctl") else None


def events_of(folder: Path) -> dict[str, int]:
    """The adjustments a cell's events.jsonl recorded, by kind."""
    path = folder / "events.jsonl"
    kinds = [json.loads(line).get("kind") for line in path.read_text().splitlines() if line.strip()] \
        if path.is_file() else []
    return dict(Counter(k for k in kinds if k in ("lr_reduce", "early_stop", "control", "control_rejected")))


def figure(by_arm: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Training loss (top) and learning rate (bottom) against step, one line per arm (first seed)."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), dpi=110, sharex=True)
    for arm, cells in by_arm.items():
        curve = cells[0]["values"]["curve"]
        steps = [s["step"] for s in curve]
        top.plot(steps, [s["loss"] for s in curve], lw=1, label=arm)
        bottom.plot(steps, [s["lr"] for s in curve], lw=1, label=arm)
    top.set_ylabel("training loss")
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("step")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=7, ncol=2)
    save_figure(fig, path)


def run(size: str, out: Path, overrides: list[str], only: list[str] | None = None,
        seeds: list[int] | None = None) -> dict[str, Any]:
    keys = arms(size, overrides)
    _, by_arm = sweep(NAME, size, keys, out, overrides, only, seeds, extra=live_hook)
    rows = []
    for arm, cells in by_arm.items():
        v = [c["values"] for c in cells]
        for c in cells:
            if "events" not in c["values"]:
                c["values"]["events"] = events_of(out / "cells" / f"{arm}-s{c['seed']}")
                save_cell(out, c)
        events: Counter[str] = Counter()
        for c in cells:
            events.update(c["values"]["events"])
        budget = v[0]["budget_steps"]
        ran = [x["steps"] for x in v]
        rows.append([arm, ", ".join(k for k in keys[arm] if "eval_interval" not in k) or "-", len(cells),
                     pm(ran, 0), pm([budget - r for r in ran], 0), pm([x["final_loss"] for x in v]),
                     pm([x["val_loss"] for x in v if x["val_loss"] is not None]), pm([x["val_bpb"] for x in v]),
                     f"{v[0]['final_lr']:.3g}" if v[0]["final_lr"] is not None else "-",
                     ", ".join(f"{k} x{n}" for k, n in sorted(events.items())) or "-"])
    notes = [(f"budget {next(iter(by_arm.values()))[0]['values']['budget_steps']} steps for every arm, "
             "validation ten times in each; ± is one standard deviation over seeds; final lr: the first seed's")]
    return write_table(out, NAME, "live adjustment: schedules, automatic and live changes on one budget", COLUMNS,
                       rows, [c for cells in by_arm.values() for c in cells], lambda p: figure(by_arm, p), notes,
                       {"size": size})

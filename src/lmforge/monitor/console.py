"""A rich progress bar for long work: stage, step, loss, tokens/s and ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lmforge.train.callbacks import Callback

console = Console(stderr=True)


class ProgressBar(Callback):
    def __init__(self, total: int, start: int = 0, label: str = "train") -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
            TextColumn("{task.fields[tps]} tok/s"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=console, transient=False,
        )
        self.task = self.progress.add_task(label, total=total, completed=start, loss="-", val="-", tps="-")

    def on_train_start(self, trainer: Any) -> None:
        self.progress.start()

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.progress.update(self.task, completed=metrics["step"], loss=f"{metrics['loss']:.3f}",
                             tps=f"{metrics['tokens_per_s']:,.0f}")

    def on_eval_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.progress.update(self.task, val=f"{metrics['val_loss']:.3f}")

    def on_train_end(self, trainer: Any) -> None:
        self.progress.update(self.task, completed=trainer.step)
        self.progress.stop()

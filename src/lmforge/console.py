"""The console: a rich live panel (or a plain progress bar) during training, and the same panel
for `lmforge watch`, which rebuilds its state from the run's files."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress_bar import ProgressBar as Bar
from rich.table import Table

console = Console(stderr=True)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-" if value is None else str(value)
    return format(value, spec)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_panel(state: dict[str, Any]) -> Group:
    """One view of a run: progress, the latest metrics, and the last few events."""
    step, total = state.get("step") or 0, state.get("total") or 0
    table = Table(title=state.get("title", "training"), show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("step", f"{step:,} / {total:,}", "status", state.get("status", "running")),
        ("loss", _fmt(state.get("loss"), ".4f"), "val loss", _fmt(state.get("val_loss"), ".4f")),
        ("best val", _fmt(state.get("best_val_loss"), ".4f"), "lr", _fmt(state.get("lr"), ".3e")),
        ("grad norm", _fmt(state.get("grad_norm"), ".3f"), "tokens/s", _fmt(state.get("tokens_per_s"), ",.0f")),
        ("MFU", _fmt(None if state.get("mfu") is None else 100 * state["mfu"], ".1f") + " %",
         "elapsed / ETA", f"{_duration(state.get('elapsed_s'))} / {_duration(state.get('eta_s'))}"),
    ]
    for row in rows:
        table.add_row(*row)
    parts: list[Any] = [table, Bar(total=max(1, total), completed=min(step, total or 1), width=60)]
    events = state.get("events") or []
    if events:
        ev = Table(title="recent events", show_header=True, box=None, padding=(0, 1))
        ev.add_column("step", justify="right")
        ev.add_column("kind")
        ev.add_column("message")
        for e in events[-5:]:
            ev.add_row(str(e.get("step", "")), str(e.get("kind", "")), str(e.get("message", ""))[:90])
        parts.append(ev)
    return Group(*parts)


class LivePanel:
    """The training console: a panel redrawn in place a few times a second."""

    def __init__(self, title: str = "training") -> None:
        self.state: dict[str, Any] = {"title": title}
        self.live = Live(render_panel(self.state), console=console, refresh_per_second=4, transient=False)

    def start(self, step: int, total: int) -> None:
        self.state.update(step=step, total=total)
        self.live.start()

    def update(self, metrics: dict[str, Any], total: int) -> None:
        self.state.update(metrics, total=total)
        self.live.update(render_panel(self.state))

    def update_eval(self, metrics: dict[str, Any], best: float | None) -> None:
        self.state.update(val_loss=metrics.get("val_loss"), best_val_loss=best)
        self.live.update(render_panel(self.state))

    def stop(self, step: int) -> None:
        self.state.update(step=step, status="finished")
        self.live.update(render_panel(self.state))
        self.live.stop()


class ProgressBar:
    """A one-line progress bar (for logs and small terminals): step, loss, val, tok/s, ETA."""

    def __init__(self, label: str = "train") -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
            TextColumn("lr {task.fields[lr]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task = self.progress.add_task(label, total=1, loss="-", val="-", tps="-", lr="-")

    def start(self, step: int, total: int) -> None:
        self.progress.update(self.task, total=total, completed=step)
        self.progress.start()

    def update(self, metrics: dict[str, Any], total: int) -> None:
        self.progress.update(self.task, total=total, completed=metrics["step"], loss=_fmt(metrics["loss"], ".3f"),
                             lr=_fmt(metrics.get("lr"), ".2e"), tps=_fmt(metrics.get("tokens_per_s"), ",.0f"))

    def update_eval(self, metrics: dict[str, Any], best: float | None) -> None:
        self.progress.update(self.task, val=_fmt(metrics.get("val_loss"), ".3f"))

    def stop(self, step: int) -> None:
        self.progress.update(self.task, completed=step)
        self.progress.stop()


def make_panel(mode: str, title: str) -> LivePanel | ProgressBar | None:
    """"auto": the live panel on a terminal, the one-line bar otherwise (logs stay readable)."""
    if mode == "none":
        return None
    if mode == "panel" or (mode == "auto" and console.is_terminal):
        return LivePanel(title)
    return ProgressBar()

"""The console: a rich live panel (or a plain progress bar) during training, and the same panel
for `lmforge watch`, which rebuilds its state from the run's files. Without a terminal (output
sent to a file, CI) a live display cannot redraw, so training prints plain lines instead
(`LinePrinter`), and the other long loops report through a `Ticker`. `--quiet` and `NO_COLOR`
are honoured here, in one place."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from rich.text import Text

QUIET_ENV = "LMFORGE_QUIET"  # set by --quiet; an environment variable so worker processes inherit it


def _no_color() -> bool:
    """NO_COLOR (no-color.org): any non-empty value. rich alone drops colours but keeps bold and
    dim; no colour system at all writes no style codes."""
    return os.environ.get("NO_COLOR", "") != ""


class _Console(Console):
    """rich's Console with two changes.

    A string is printed as written: no markup, no emoji codes. Messages quote paths, run names,
    globs and events (a run folder `exp[/v2]`, a reason `[tag]`); read as markup they would
    vanish or raise rich's MarkupError. Styles go through `show`/`say` as (text, style) parts.

    A message printed to a file stays one line: wrapped at 80 columns it becomes several log
    lines (a path cut in two, a summary grep cannot find), while a terminal wraps long lines
    itself. Only text: tables and panels keep their layout."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, markup: bool | None = None,
              emoji: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None and not self.is_terminal and all(isinstance(o, (str, Text)) for o in objects):
            soft_wrap = True
        super().print(*objects, soft_wrap=soft_wrap, markup=bool(markup), emoji=bool(emoji), **kwargs)


console = _Console(stderr=True, color_system=None if _no_color() else "auto",
                   quiet=os.environ.get(QUIET_ENV, "") not in ("", "0"))


def set_quiet(quiet: bool) -> None:
    """--quiet: only errors and the command's last line are printed (see `say`). Kept in the
    environment too, so datatrove's and the tokenizer's worker processes stay quiet."""
    console.quiet = quiet
    if quiet:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


# A piece of a message: plain text, or (text, rich style) such as ("done", "bold green").
Part = str | tuple[str, str]


def styled(*parts: Part) -> Text:
    """One line from parts; the text of every part is taken literally, never as markup."""
    return Text.assemble(*parts)


def show(*parts: Part) -> None:
    """Print a message made of parts: `show(("train", "bold cyan"), ": running")`. Interpolate
    paths and messages into plain parts freely: nothing in them is read as markup."""
    console.print(styled(*parts))


def say(*parts: Part) -> None:
    """`show`, even under --quiet: errors and a command's final line are what --quiet keeps."""
    quiet, console.quiet = console.quiet, False
    try:
        show(*parts)
    finally:
        console.quiet = quiet


def plain(text: str) -> None:
    """A progress line exactly as written: no markup, no number highlighting, no wrapping (log
    readers and grep see one line per update)."""
    console.print(text, highlight=False, soft_wrap=True)


@contextmanager
def kept_on_stderr() -> Iterator[None]:
    """Keep the console on this process's stderr while a library's own chatter is swallowed with
    contextlib.redirect_stderr (rich looks up sys.stderr at each print, so it would follow)."""
    console.file = console.file  # pin the stream the console uses now
    try:
        yield
    finally:
        console.file = None  # type: ignore[assignment]  # back to following sys.stderr


def _fmt(value: Any, spec: str) -> str:
    """A number as `spec` says; None as "-"; anything else (NaN, a hand-edited "abc") as written."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    return format(value, spec)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_panel(state: dict[str, Any]) -> Group:
    """One view of a run: progress, the latest metrics, and the last few events."""
    step, total = (v if isinstance(v, int) else 0 for v in (state.get("step"), state.get("total")))
    table = Table(title=Text(state.get("title", "training")), show_header=False, box=None, padding=(0, 2))
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
        table.add_row(*map(Text, row))
    parts: list[Any] = [table, Bar(total=max(1, total), completed=min(step, total or 1), width=60)]
    events = state.get("events") or []
    if events:
        ev = Table(title="recent events", show_header=True, box=None, padding=(0, 1))
        ev.add_column("step", justify="right")
        ev.add_column("kind")
        ev.add_column("message")
        for e in events[-5:]:
            # events quote reasons and paths as written ("[tag]", "exp[/v2]"): Text, not markup
            ev.add_row(Text(str(e.get("step", ""))), Text(str(e.get("kind", ""))), Text(str(e.get("message", ""))[:90]))
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


class Pace:
    """When the next progress line is due: each time another tenth of the work is done, or
    `max_gap_s` after the last line, whichever comes first; never sooner than `min_gap_s` after
    the last line (of any Pace sharing `shared`), nor before `delay_s` from the start (a loop that
    ends quickly prints nothing; one that does not gets its first line then). Without a known
    total, only time counts."""

    def __init__(self, total: float | None, delay_s: float = 0.0, min_gap_s: float = 0.0,
                 max_gap_s: float = 30.0, fraction: float = 0.1, shared: list[float] | None = None) -> None:
        self.total, self.fraction = total or None, fraction
        self.delay_s, self.min_gap_s, self.max_gap_s = delay_s, min_gap_s, max_gap_s
        self.shared = shared if shared is not None else [-math.inf]
        self.started = self.last = time.monotonic()
        self.next_done = self._boundary_after(0.0)

    def _boundary_after(self, done: float) -> float:
        if self.total is None:
            return math.inf
        step = self.total * self.fraction
        return (math.floor(done / step) + 1) * step

    def restart(self, done: float, total: float | None) -> None:
        """Count from `done` of `total` (training resumed part-way)."""
        self.total = total or None
        self.started = self.last = time.monotonic()
        self.next_done = self._boundary_after(done)

    def due(self, done: float) -> bool:
        now = time.monotonic()
        if now - self.started < self.delay_s or now - self.shared[0] < self.min_gap_s:
            return False
        first = self.delay_s > 0 and self.last == self.started  # a slow loop says so once the delay is up
        if not first and done < self.next_done and now - self.last < self.max_gap_s:
            return False
        self.last = self.shared[0] = now
        self.next_done = self._boundary_after(done)
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class LinePrinter:
    """Training progress as plain lines for logs and CI, where a live display cannot redraw (it
    would print only when training ends): step/total, loss, val loss, tokens/s and ETA, every
    tenth of the steps or every 30 s, whichever comes first. Each number is one that the Monitor
    also writes to metrics.jsonl."""

    def __init__(self, label: str = "train") -> None:
        self.label = label
        self.pace = Pace(None)
        self.total = 0
        self.val: float | None = None
        self.pending: dict[str, Any] | None = None  # the newest record, until it is printed

    def start(self, step: int, total: int) -> None:
        self.total = total
        self.pace.restart(step, total)
        if step:
            plain(f"{self.label}: resuming at step {step:,}/{total:,}")

    def update(self, metrics: dict[str, Any], total: int) -> None:
        self.total, self.pending = total, metrics
        if self.pace.due(metrics["step"]):
            self._print()

    def update_eval(self, metrics: dict[str, Any], best: float | None) -> None:
        self.val = metrics.get("val_loss")

    def stop(self, step: int) -> None:
        if self.pending is not None:  # stopped between lines (early stop, ctl stop, Ctrl-C)
            self._print()

    def _print(self) -> None:
        m, self.pending = self.pending or {}, None
        step, total = m.get("step", 0), max(1, self.total)
        parts = [f"step {step:,}/{self.total:,} ({100 * step / total:.0f}%)", f"loss {_fmt(m.get('loss'), '.4f')}"]
        if self.val is not None:
            parts.append(f"val loss {_fmt(self.val, '.4f')}")
        parts += [f"{_fmt(m.get('tokens_per_s'), ',.0f')} tokens/s", f"ETA {_duration(m.get('eta_s'))}"]
        plain(f"{self.label}: " + ", ".join(parts))


_TICKER_LINE = [-math.inf]  # when any Ticker last printed: loops in a row share the 5 s gap


class Ticker:
    """Progress of a long loop outside training (reading documents, packing, scoring): a first
    line once the loop has run 3 s (short loops stay silent), then every tenth of the work or
    every 30 s, and never two lines from any tickers within 5 s. Cheap enough to call once per
    item: a clock read and a few comparisons. It prints counts of items, not new measurements."""

    def __init__(self, label: str, total: int | None = None, unit: str = "", delay_s: float = 3.0) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self.note = ""  # e.g. which input file; printed after the count
        self.pace = Pace(total, delay_s=delay_s, min_gap_s=5.0, shared=_TICKER_LINE)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.pace.due(self.done):
            self._print()

    def _print(self) -> None:
        count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "")
        unit = f" {self.unit}" if self.unit else ""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        note = f", {self.note}" if self.note else ""
        plain(f"{self.label}: {count}{unit}{share}{note}, {_duration(self.pace.elapsed())} elapsed")


def live_display_works() -> bool:
    """A live display redraws only on a terminal (or in Jupyter); in a file it prints once, at the end."""
    return console.is_terminal or console.is_jupyter


def make_panel(mode: str, title: str) -> LivePanel | ProgressBar | LinePrinter | None:
    """The training display for `monitor.console`. "auto": the live panel on a terminal, plain
    lines otherwise; "panel" and "bar" also fall back to lines without a terminal, since there
    they would stay blank until training ends; "lines" always prints lines; "none" and --quiet
    show nothing."""
    if mode == "none" or console.quiet:
        return None
    if mode == "lines" or not live_display_works():
        return LinePrinter()
    if mode == "bar":
        return ProgressBar()
    return LivePanel(title)

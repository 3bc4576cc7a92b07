"""`lmforge watch RUN`: the live panel of a running or finished run, rebuilt from its files only
(metrics.jsonl, events.jsonl, config.yaml, control/trainer.json), so it works from any shell."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from rich.live import Live

from lmforge.config.load import read_text_file
from lmforge.console import console, render_panel
from lmforge.errors import LmforgeError
from lmforge.monitor.control import trainer_alive
from lmforge.rundir import RunDir


class _Tail:
    """Reads only the complete lines appended since the last call (a half-written line waits)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.restarted = False  # set when the file shrank (a fresh run or a resume rewrote it)

    def new_records(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        size = self.path.stat().st_size
        self.restarted = size < self.offset
        if self.restarted:  # rewritten by a fresh run or a resume: read again from the start
            self.offset = 0
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        out = []
        for line in chunk[:end].splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


def planned_steps(config: Path) -> int:
    """train.steps from a run's config.yaml, or a clear error naming the line that is wrong."""
    try:
        cfg = yaml.safe_load(read_text_file(config, "a run's config.yaml")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config}:{mark.line + 1}:{mark.column + 1}" if mark else str(config)
        raise LmforgeError(f"malformed YAML at {where}: {getattr(exc, 'problem', None) or exc}",
                           "it is the config the run was made with: fix it by hand, or write it again with "
                           "the stage command that made the run (it writes config.yaml first)") from None
    if not isinstance(cfg, dict):
        raise LmforgeError(f"{config}: the top level must be a mapping of sections, got {type(cfg).__name__}",
                           "fix it by hand: it is the config the run was made with")
    train = cfg.get("train") or {}
    steps = train.get("steps") if isinstance(train, dict) else None
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)):
        raise LmforgeError(f"{config}: train.steps is {steps!r}, not a whole number",
                           "fix it by hand: it is the number of steps the run trains for")
    return steps or 0


class RunView:
    """The state `render_panel` shows, kept up to date from the run directory."""

    def __init__(self, run: RunDir) -> None:
        if not run.root.is_dir():
            raise LmforgeError(f"no run directory at {run.root}", "give the folder a run was written to, e.g. runs/default")
        self.run = run
        self.metrics, self.events_tail = _Tail(run.metrics), _Tail(run.events)
        self.state: dict[str, Any] = {"title": f"lmforge watch: {run.root.name}", "events": []}
        self.finished = False
        self.paused = False
        if run.config.is_file():
            self.state["total"] = planned_steps(run.config)

    def refresh(self) -> dict[str, Any]:
        records = self.metrics.new_records()
        if self.metrics.restarted:
            self.state.pop("best_val_loss", None)
        for rec in records:
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                continue  # a line edited by hand: the panel shows the records it can
            if rec.get("kind") == "train":
                self.state.update({k: v for k, v in rec.items() if k != "kind"})
            elif rec.get("kind") == "eval" and rec.get("val_loss") is not None:
                self.state["val_loss"] = rec["val_loss"]
                best = self.state.get("best_val_loss")
                self.state["best_val_loss"] = rec["val_loss"] if best is None else min(best, rec["val_loss"])
        for ev in self.events_tail.new_records():
            self._event(ev)
        alive = trainer_alive(self.run)
        if alive:
            self.state["status"] = f"paused (pid {alive['pid']})" if self.paused else f"running (pid {alive['pid']})"
        else:
            self.state["status"] = "finished" if self.finished else "not running"
        return self.state

    def _event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        if kind == "train_start":
            self.finished, self.paused = False, False
        elif kind == "train_end":
            self.finished = True
        elif kind == "control":
            changes = ev.get("changes") or {}
            if "train.steps" in changes:
                self.state["total"] = int(changes["train.steps"])
            if ev.get("action") in ("pause", "resume"):
                self.paused = ev.get("action") == "pause"
        if kind in ("train_start", "resume"):
            return  # routine; the panel shows the unusual
        self.state["events"] = (self.state["events"] + [ev])[-20:]


def watch(run: RunDir, interval: float = 1.0, once: bool = False, follow: bool = False) -> dict[str, Any]:
    """Show the run's panel until its training ends (or forever with follow; once: a single frame)."""
    view = RunView(run)
    state = view.refresh()
    if once:
        console.print(render_panel(state))
        return state
    with Live(render_panel(state), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(interval)
            state = view.refresh()
            live.update(render_panel(state))
            if not follow and not state["status"].startswith(("running", "paused")) and (
                    view.finished or not run.metrics.is_file()):
                break
    return state

"""`lmforge watch RUN` for a study: trials so far, the best, the running ones, read from the
study's storage (the journal file in RUN/tune/ or the database), so it works from any shell."""

from __future__ import annotations

import time
from typing import Any

import optuna
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lmforge.config.load import load_config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.tune.objective import best_of
from lmforge.tune.results import trial_rows
from lmforge.tune.storage import JOURNAL, open_storage, tune_dir
from lmforge.tune.study import study_name
from lmforge.tune.trial import OUTCOMES


def has_study(run: RunDir) -> bool:
    return (tune_dir(run) / JOURNAL).is_file() or (tune_dir(run) / "summary.json").is_file()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def render(study: optuna.Study, target: int, last: int = 12) -> Group:
    """Counts by outcome, the best trial, and the newest trials."""
    rows = trial_rows(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    best = best_of(done, study.direction.name.lower(), key=lambda r: r["value"]) if done else None
    head = Text(f"study {study.study_name}: {len(rows)} trials of {target} "
                f"({', '.join(f'{n} {o}' for o, n in counts.items())}), "
                f"{sum(r['steps'] or 0 for r in rows):,} steps")
    table = Table(show_edge=False)
    keys = [k for k in (rows[0] if rows else {}) if k not in ("tokens", "reason")]
    for key in keys:
        table.add_column(key, justify="right" if key in ("number", "value", "steps", "seconds") else "left")
    for r in rows[-last:]:
        style = "bold green" if best is not None and r is best else "dim" if r["state"] != "complete" else ""
        table.add_row(*(_fmt(r[k]) for k in keys), style=style)
    best_line = Text(f"best: trial {best['number']}, {best['value']:.4f}" if best else "best: none yet")
    return Group(head, best_line, table)


def watch_study(run: RunDir, interval: float = 2.0, once: bool = False) -> None:
    """Show the study until it holds tune.trials trials with an outcome (once: a single frame)."""
    if not run.config.is_file():
        raise LmforgeError(f"no config.yaml in {run.root}", "give the folder `lmforge tune` wrote")
    cfg = load_config(run.config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name(cfg), storage=open_storage(run, cfg))
    if once:
        console.print(render(study, cfg.tune.trials))
        return
    with Live(render(study, cfg.tune.trials), console=console, refresh_per_second=2) as live:
        while True:
            time.sleep(interval)
            live.update(render(study, cfg.tune.trials))
            rows = trial_rows(study)
            if sum(r["state"] in OUTCOMES for r in rows) >= cfg.tune.trials and not any(
                    r["state"] == "running" for r in rows):
                break

"""Messages print as written: paths, run names and event text that hold brackets or colons
(`exp[/v2]`, `[tag]`, `:smile:`) are never read as rich markup or emoji codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lmforge.console import console, render_panel, show
from lmforge.rundir import RunDir
from tests.helpers.runs import make_token_run

ODD = "exp[/v2] [tag] [bold]x[/] :smile:"


def test_styled_parts_keep_their_text() -> None:
    with console.capture() as cap:
        show(("train", "bold cyan"), f": running in {ODD}")
        console.print(ODD)
    assert cap.get() == f"train: running in {ODD}\n{ODD}\n"


def test_panel_shows_bracketed_titles_and_events() -> None:
    state = {"title": "lmforge watch: exp[/v2]", "step": 3, "total": 10,
             "events": [{"step": 3, "kind": "control", "message": "set lr [tag] [/v2]"}]}
    with console.capture() as cap:
        console.print(render_panel(state))
    out = cap.get()
    assert "lmforge watch: exp[/v2]" in out and "set lr [tag] [/v2]" in out


def test_a_run_folder_with_brackets_trains_and_is_watched(tmp_path: Path) -> None:
    run = make_token_run(tmp_path / "exp[" / "v2]", ["train.steps=3", "train.log_interval=1",
                                                    "monitor.stats_interval=0", "monitor.tensorboard=false"])
    env = {**os.environ, "COLUMNS": "200"}
    # --resume without a checkpoint prints the folder in a warning: once a MarkupError
    out = subprocess.run([sys.executable, "-m", "lmforge", "train", str(run.root), "--resume"], env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"no valid checkpoint in {run.checkpoints}" in out.stderr and "train: done in" in out.stderr
    RunDir(run.root).event("control", "set [tag] by hand", step=3)
    watched = subprocess.run([sys.executable, "-m", "lmforge", "watch", str(run.root), "--once"], env=env,
                             capture_output=True, text=True, check=False, timeout=120)
    assert watched.returncode == 0, watched.stderr
    assert "set [tag] by hand" in watched.stderr and "lmforge watch: v2]" in watched.stderr

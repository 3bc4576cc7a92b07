"""`lmforge watch`: the panel is rebuilt from the run's files alone."""

from __future__ import annotations

import json
import subprocess
import sys

from lmforge.console import render_panel
from lmforge.monitor.watch import RunView, _Tail
from lmforge.rundir import RunDir, append_jsonl
from tests.helpers.runs import make_token_run, read_jsonl, train


def test_watch_shows_a_finished_run(tmp_path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.log_interval=5", "train.eval_interval=10",
                                            "monitor.stats_interval=0", "monitor.tensorboard=false"])
    train(run)
    state = RunView(run).refresh()
    last = [r for r in read_jsonl(run.metrics) if r["kind"] == "train"][-1]
    evals = [r["val_loss"] for r in read_jsonl(run.metrics) if r["kind"] == "eval"]
    assert state["step"] == 20 and state["total"] == 20 and state["status"] == "finished"
    assert state["loss"] == last["loss"] and state["val_loss"] == evals[-1] and state["best_val_loss"] == min(evals)
    assert [e["kind"] for e in state["events"]] == ["train_end"]
    out = subprocess.run([sys.executable, "-m", "lmforge", "watch", str(run.root), "--once"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "20 / 20" in out.stderr and "finished" in out.stderr


def test_tail_reads_only_complete_lines(tmp_path) -> None:
    path = tmp_path / "m.jsonl"
    tail = _Tail(path)
    assert tail.new_records() == []
    append_jsonl(path, {"step": 1})
    with open(path, "a") as fh:
        fh.write('{"step": 2')  # a line being written
    assert tail.new_records() == [{"step": 1}]
    with open(path, "a") as fh:
        fh.write("}\n")
    assert tail.new_records() == [{"step": 2}]
    path.write_text(json.dumps({"step": 0}) + "\n")  # truncated on resume: start again
    assert tail.new_records() == [{"step": 0}]


def test_watch_live_step_change_and_missing_run(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    run.event("control", "set", step=5, action="set", changes={"train.steps": 500})
    view = RunView(run)
    assert view.refresh()["total"] == 500 and view.refresh()["status"] == "not running"
    out = subprocess.run([sys.executable, "-m", "lmforge", "watch", str(tmp_path / "nope"), "--once"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "no run directory" in out.stderr and "Traceback" not in out.stderr


def test_watch_on_a_malformed_config_or_metrics_says_what_is_wrong(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    run.config.write_text("train:\n  steps: 20\n  lr: [0.1\n")
    out = subprocess.run([sys.executable, "-m", "lmforge", "watch", str(run.root), "--once"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"malformed YAML at {run.config}:4:1" in out.stderr
    run.config.write_text("train:\n  steps: 20\n")
    append_jsonl(run.metrics, {"kind": "train", "step": 3, "loss": "abc", "lr": None})
    append_jsonl(run.metrics, {"kind": "train", "step": "x", "loss": 1.0})
    state = RunView(run).refresh()
    assert state["step"] == 3 and state["total"] == 20
    render_panel(state)  # "abc" is shown as written, not formatted as a number

"""The report's timeline figure of live adjustments."""

from __future__ import annotations

from lmforge.report.figures import events_timeline
from lmforge.rundir import RunDir, append_jsonl


def test_timeline_drawn_only_when_something_was_adjusted(tmp_path) -> None:
    run = RunDir(tmp_path)
    for step in range(10, 110, 10):
        append_jsonl(run.metrics, {"kind": "train", "step": step, "loss": 5 - step / 50,
                                   "lr": 1e-3 if step <= 50 else 1e-4})
    run.event("train_start", "training", step=0)
    assert events_timeline(run.metrics, run.events, tmp_path / "t.png") is None
    run.event("control", "set train.lr: 0.001 -> 0.0001", step=50, action="set", reason="test")
    run.event("lr_reduce", "LR scaled by 0.1", step=80, reason="plateau")
    out = events_timeline(run.metrics, run.events, tmp_path / "t.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""`lmforge train` stopped by SIGTERM, as Slurm, Kubernetes, `docker stop` and torchrun stop it:
the step under way finishes, a checkpoint of it is saved, the event is written and the command
exits 143 (128 + SIGTERM), so no step is lost. Exact resume from such a checkpoint is
tests/train/test_resume.py's; every rank stopping together is tests/train/test_distributed.py's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lmforge.rundir import read_jsonl
from lmforge.train import checkpoint as ckpt
from tests.helpers.runs import make_token_run

LMFORGE = [sys.executable, "-m", "lmforge"]
# long enough never to end by itself before the signal; no periodic checkpoint in the way
LONG = ["train.steps=100000", "train.max_seconds=120", "train.log_interval=1", "train.eval_interval=100000",
        "train.checkpoint_interval=100000", "monitor.stats_interval=0", "monitor.tensorboard=false"]


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(r.get("step", 0) >= step for r in read_jsonl(run / "metrics.jsonl")):
            return
        time.sleep(0.1)
    raise AssertionError(f"training did not reach step {step} (exit {proc.poll()})")


def test_sigterm_saves_the_step_reached_and_exits_143(tmp_path: Path) -> None:
    run = make_token_run(tmp_path / "run", LONG)
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([*LMFORGE, "train", str(run.root)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_step(run.root, 3, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM at step" in err and "--resume" in err
    (event,) = [e for e in read_jsonl(run.events) if e["kind"] == "interrupted"]
    assert event["signal"] == "SIGTERM"
    newest = ckpt.list_checkpoints(run.checkpoints)[-1]
    last_logged = max(r["step"] for r in read_jsonl(run.metrics))
    # the checkpoint holds the last step taken: nothing since the last periodic save is lost
    assert newest.name == f"step-{event['step']}" == f"step-{last_logged}" and ckpt.verify(newest) is None
    assert not (run.root / "control" / "trainer.json").exists()

    resumed = subprocess.run([*LMFORGE, "train", str(run.root), "--resume", f"train.steps={event['step'] + 2}"],
                             env=env, capture_output=True, text=True, check=False, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert [e["step"] for e in read_jsonl(run.events) if e["kind"] == "resume"] == [event["step"]]
    assert ckpt.list_checkpoints(run.checkpoints)[-1].name == f"step-{event['step'] + 2}"

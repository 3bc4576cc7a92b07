"""A stage command on a run folder whose training is live in another process must stop before it
touches anything: it would delete that training's checkpoints and leave stage records that
describe neither training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.monitor.control import process_start, trainer_alive
from lmforge.pipeline import run_all, write_config
from lmforge.rundir import RunDir


def _own(run: RunDir, pid: int) -> None:
    """A trainer record as the Controller writes it: after its process started."""
    (run.root / "control").mkdir(parents=True, exist_ok=True)
    (run.root / "control" / "trainer.json").write_text(json.dumps({"pid": pid, "started": time.time()}))


def test_a_live_trainer_in_another_process_refuses_every_stage(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "my run")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _own(run, other.pid)
        (run.checkpoints / "step-10").mkdir(parents=True)
        with pytest.raises(LmforgeError, match=rf"a training is running in .*my run \(pid {other.pid}\)"):
            run_all(run, load_config(None, "smoke", ["train.steps=20"]))
        assert (run.checkpoints / "step-10").is_dir() and not run.config.exists()
    finally:
        other.kill()
        other.wait()


def test_a_dead_or_own_trainer_record_does_not_block(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    _own(run, os.getpid())  # this process (a trainer that ended by an exception leaves its record)
    write_config(run, load_config(None, "smoke", []))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run.root / "control" / "trainer.json").write_text(json.dumps({"pid": dead.pid, "started": 0}))
    write_config(run, load_config(None, "smoke", []))
    assert run.config.is_file()


def test_a_record_whose_pid_was_reused_does_not_block(tmp_path: Path) -> None:
    """A killed trainer leaves its record; after a reboot or enough processes, its pid belongs to
    another process, which started after the record was written."""
    run = RunDir(tmp_path / "run")
    (run.root / "control").mkdir(parents=True)
    record = run.root / "control" / "trainer.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record.write_text(json.dumps({"pid": other.pid, "started": time.time() - 3600}))
        write_config(run, load_config(None, "smoke", []))  # not refused
        assert trainer_alive(run) is None
        start = process_start(other.pid)
        if start is not None:  # the exact check: same pid, another process start
            record.write_text(json.dumps({"pid": other.pid, "started": time.time(), "pid_start": start[0] + 1}))
            assert trainer_alive(run) is None
            record.write_text(json.dumps({"pid": other.pid, "started": time.time(), "pid_start": start[0]}))
            with pytest.raises(LmforgeError) as refused:
                write_config(run, load_config(None, "smoke", []))
            assert "stale" in refused.value.hint and str(record) in refused.value.hint
    finally:
        other.kill()
        other.wait()

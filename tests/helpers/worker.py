"""Run the train stage in a child process; optionally SIGKILL itself at a given step.

Used by the resume tests: `python _worker.py RUN_DIR KILL_STEP RESUME override...`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import tiny_config

from lmforge.monitor import build_callbacks
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback
from lmforge.train.stage import build_trainer


class KillAt(Callback):
    """After step `at`, die without any cleanup (SIGKILL, as the OOM killer or a lost node would),
    or press Ctrl-C (SIGINT)."""

    def __init__(self, at: int, sig: int = signal.SIGKILL) -> None:
        self.at, self.sig = at, sig

    def on_step_end(self, trainer: object, metrics: dict) -> None:
        if trainer.step == self.at and int(os.environ.get("RANK", "0")) == 0:
            os.kill(os.getpid(), self.sig)


def main() -> None:
    run_dir, kill_at, resume, *overrides = sys.argv[1:]
    cfg = tiny_config(*overrides)
    sig = signal.SIGINT if kill_at.startswith("int:") else signal.SIGKILL
    at = int(kill_at.removeprefix("int:"))
    cbs = [KillAt(at, sig)] if at > 0 else []
    trainer = build_trainer(RunDir(run_dir), cfg, resume=resume == "1", show_progress=False,
                            callbacks=lambda *args: build_callbacks(*args) + cbs)  # as `lmforge train` does
    trainer.fit()
    print(f"stopped at step {trainer.step}, interrupted={trainer.interrupted}")


if __name__ == "__main__":
    main()

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

from lmforge.rundir import RunDir
from lmforge.train.callbacks import Callback
from lmforge.train.stage import build_trainer


class KillAt(Callback):
    """Die without any cleanup (as the OOM killer or a lost node would) after step `at`."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer: object, metrics: dict) -> None:
        if trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    run_dir, kill_at, resume, *overrides = sys.argv[1:]
    cfg = tiny_config(*overrides)
    cbs = [KillAt(int(kill_at))] if int(kill_at) > 0 else []
    trainer = build_trainer(RunDir(run_dir), cfg, resume=resume == "1", show_progress=False, callbacks=cbs)
    trainer.fit()


if __name__ == "__main__":
    main()

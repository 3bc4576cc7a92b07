"""The train stage in a child process, as `lmforge train` runs it, optionally killed at a step.

`launch(...)` starts it from a test (under torch.distributed.run when procs > 1); by hand, from the
repository root:

    python -m tests.helpers.worker RUN_DIR KILL_STEP RESUME override...

KILL_STEP 0 trains to the end; N sends SIGKILL to rank 0 after step N, `int:N` sends SIGINT
(Ctrl-C), `term:N` SIGTERM (what a scheduler sends before it kills), `term2:N` SIGTERM and a second
one during the save it causes. RESUME is 1 to resume from the newest checkpoint. The config is `tiny_config(*overrides)`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from lmforge.monitor import build_callbacks
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback
from lmforge.train.stage import build_trainer
from tests.helpers.runs import tiny_config

ROOT = Path(__file__).resolve().parents[2]  # the repository root: where `-m tests.helpers.worker` resolves
MODULE = "tests.helpers.worker"


class KillAt(Callback):
    """After step `at`, die without any cleanup (SIGKILL, as the OOM killer or a lost node would),
    or press Ctrl-C (SIGINT), or send SIGTERM; `again`: the same signal once more while the
    checkpoint it caused is being saved (torchrun forwarding a scheduler's SIGTERM)."""

    def __init__(self, at: int, sig: int = signal.SIGKILL, again: bool = False) -> None:
        self.at, self.sig, self.again = at, sig, again
        self.sent = False

    def on_step_end(self, trainer: object, metrics: dict) -> None:
        if trainer.step == self.at and int(os.environ.get("RANK", "0")) == 0:
            self.sent = True
            os.kill(os.getpid(), self.sig)

    def on_checkpoint(self, trainer: object, path: Path) -> None:
        if self.sent and self.again:
            self.again = False
            os.kill(os.getpid(), self.sig)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(run: Path, *overrides: str, procs: int = 1, kill_at: int | str = 0, resume: bool = False) -> list[str]:
    """The command line that trains `run` in a child process (or `procs` processes with gloo)."""
    args = ["-m", MODULE, str(run), str(kill_at), "1" if resume else "0", *overrides]
    if procs > 1:
        args = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port()), *args]
    return [sys.executable, *args]


def launch(run: Path, *overrides: str, procs: int = 1, kill_at: int | str = 0, resume: bool = False) -> int:
    """Train `run` in a child process (or `procs` processes with gloo); its exit status, negative
    for the signal that killed it. Output of an unexpected failure is printed for pytest to show."""
    proc = subprocess.run(command(run, *overrides, procs=procs, kill_at=kill_at, resume=resume), cwd=ROOT,
                          check=False, capture_output=True, text=True, timeout=300)
    if proc.returncode and not kill_at:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.returncode


def main() -> None:
    run_dir, kill_at, resume, *overrides = sys.argv[1:]
    cfg = tiny_config(*overrides)
    prefix, _, step = kill_at.rpartition(":")
    sig = {"int": signal.SIGINT, "term": signal.SIGTERM, "term2": signal.SIGTERM, "": signal.SIGKILL}[prefix]
    at = int(step)
    cbs = [KillAt(at, sig, again=prefix == "term2")] if at > 0 else []
    trainer = build_trainer(RunDir(run_dir), cfg, resume=resume == "1", show_progress=False,
                            callbacks=lambda *args: build_callbacks(*args) + cbs)  # as `lmforge train` does
    trainer.fit()
    print(f"stopped at step {trainer.step}, interrupted={trainer.interrupted}, signal={trainer.stop_signal}")


if __name__ == "__main__":
    main()

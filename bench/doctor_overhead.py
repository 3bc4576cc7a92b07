"""What the doctor costs per training step in `suggest` mode (the default).

Measured within one training, so the shared machine's drift cancels: the time spent inside the
doctor's callbacks (perf_counter around each call) against the training's wall time without them.
Run on the smoke preset's model (a small model, so the worst case in relative terms) on the
built-in corpus, at log_interval 1 (a check every step: the worst case) and 10 (the default).

    PYTHONPATH=src .venv/bin/python bench/doctor_overhead.py [--steps 300] [--preset smoke]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from lmforge.config.load import load_config
from lmforge.doctor.live import Doctor
from lmforge.monitor import build_callbacks as monitor_callbacks
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir
from lmforge.train.stage import run_train


class TimedDoctor(Doctor):
    """The doctor, with the seconds spent in each of its callback calls."""

    spent: list[float]

    def _timed(self, name: str, *args: Any) -> None:
        t = time.perf_counter()
        getattr(super(), name)(*args)
        self.spent.append(time.perf_counter() - t)

    def on_step_end(self, trainer: Any, metrics: dict) -> None:
        self._timed("on_step_end", trainer, metrics)

    def on_eval_end(self, trainer: Any, metrics: dict) -> None:
        self._timed("on_eval_end", trainer, metrics)


def measure(root: Path, preset: str, steps: int, log_interval: int) -> dict[str, float]:
    cfg = load_config(None, preset, [f"train.steps={steps}", f"train.log_interval={log_interval}",
                                     "train.threads=1", "train.device=cpu", "monitor.console=none",
                                     "monitor.tensorboard=false", "monitor.control=false",
                                     "monitor.peak_flops=1e11", "train.checkpoint_interval=100000"])
    run = RunDir(root)
    run.create()
    write_config(run, cfg)
    for stage in ("data", "tokenize"):
        run_stage(run, cfg, stage)
    doctor: list[TimedDoctor] = []

    def callbacks(r: RunDir, c: Any, model: Any, start: int, show: bool) -> list[Any]:
        d = TimedDoctor(r, c)
        d.spent = []
        doctor[:] = [d]
        return monitor_callbacks(r, c, model, start, show) + doctor

    t = time.perf_counter()
    run_train(run, cfg, show_progress=False, callbacks=callbacks)
    wall = time.perf_counter() - t
    spent = sum(doctor[0].spent)
    return {"log_interval": log_interval, "steps": steps, "wall_s": wall, "doctor_s": spent,
            "calls": len(doctor[0].spent), "median_call_ms": 1e3 * statistics.median(doctor[0].spent),
            "overhead": spent / (wall - spent)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--preset", default="smoke")
    args = ap.parse_args()
    for log_interval in (1, 10):
        with tempfile.TemporaryDirectory() as tmp:
            m = measure(Path(tmp), args.preset, args.steps, log_interval)
        print(f"{args.preset}, log_interval {log_interval}: {m['steps']} steps in {m['wall_s']:.1f} s, doctor "
              f"{m['doctor_s']:.2f} s in {m['calls']} calls (median {m['median_call_ms']:.2f} ms): "
              f"overhead {m['overhead']:.2%} of step time")


if __name__ == "__main__":
    main()

"""What monitoring costs per training step, on the default preset's model shape.

Configurations, run alternately in rounds so machine drift hits them alike:
  bare      no callbacks at all (the loop alone)
  default   the default monitor: metrics.jsonl + TensorBoard every log step, live control polling,
            training statistics every 100 steps (monitor.stats_interval's default)
  stats@1   statistics at every step: the cost of one statistics step, undiluted
  hist@100  the default plus weight/gradient histograms every 100 steps

Per configuration: mean ms/step over the timed steps of a round (statistics steps included: a
median would hide them), then the median over rounds. Usage:

    .venv/bin/python bench/monitor_overhead.py [--steps 200] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmforge.config import dump_config, load_config
from lmforge.rundir import RunDir, atomic_write_text
from lmforge.train.callbacks import Callback
from lmforge.train.stage import build_trainer

CONFIGS = {
    "bare": None,
    "default": [],
    "stats@1": ["monitor.stats_interval=1"],
    "hist@100": ["monitor.histogram_interval=100"],
}


class StepClock(Callback):
    """Wall time from the first timed step to the last logged step."""

    def __init__(self, skip: int) -> None:
        self.skip, self.t0, self.t1, self.s1 = skip, 0.0, 0.0, 0

    def on_train_start(self, trainer) -> None:
        def mark(opt, args, kwargs) -> None:
            if trainer.step + 1 == self.skip:
                self.t0 = time.perf_counter()
        trainer.optimizer.register_step_post_hook(mark)

    def on_step_end(self, trainer, metrics) -> None:
        self.t1, self.s1 = time.perf_counter(), metrics["step"]


def make_run(root: Path, vocab: int) -> RunDir:
    run = RunDir(root)
    run.tokens.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 400_000), ("val", 20_000)):
        rng.integers(0, vocab, n).astype(np.uint16).tofile(run.token_file(split))
    meta = {"dtype": "uint16", "vocab_size": vocab,
            "splits": {"train": {"tokens": 400_000}, "val": {"tokens": 20_000}}}
    (run.tokens / "meta.json").write_text(json.dumps(meta))
    return run


def time_config(root: Path, name: str, steps: int, warmup: int, threads: int) -> float:
    """Mean ms per step over steps warmup+1..steps of one fresh training."""
    extra = CONFIGS[name]
    run = make_run(root / name, 2048) if not (root / name / "tokens").is_dir() else RunDir(root / name)
    overrides = [f"train.steps={steps}", "train.eval_interval=100000", "train.checkpoint_interval=100000",
                 f"train.threads={threads}", "monitor.console=none", "monitor.peak_flops=1e11", *(extra or [])]
    cfg = load_config(None, "default", overrides)
    atomic_write_text(run.config, dump_config(cfg))
    clock = StepClock(warmup)
    trainer = build_trainer(run, cfg, resume=False, show_progress=False, callbacks=[clock])
    if extra is None:
        trainer.callbacks = [clock]  # the loop alone
    trainer.fit()
    return 1000 * (clock.t1 - clock.t0) / (clock.s1 - warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = every core")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
          f"python {platform.python_version()}, torch {torch.__version__}")
    print(f"shape: default preset (4 layers x 4 heads x 128, context 128, batch 16, vocab 2048); "
          f"{args.steps} steps, first {args.warmup} untimed; {args.rounds} rounds")
    results: dict[str, list[float]] = {k: [] for k in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in CONFIGS:
                ms = time_config(Path(tmp), name, args.steps, args.warmup, args.threads)
                results[name].append(ms)
                print(f"  round {r + 1} {name:9s} {ms:7.2f} ms/step", file=sys.stderr)
    base = statistics.median(results["bare"])
    print("\n| configuration | ms/step (median of rounds) [min-max] | vs bare |")
    print("|---|---|---|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} [{min(values):.2f}-{max(values):.2f}] | {100 * (med / base - 1):+.1f}% |")
    # paired per round: the same round's bare run is the reference (drift cancels better)
    per_stat = [s - b for s, b in zip(results["stats@1"], results["bare"], strict=True)]
    cost = statistics.median(per_stat)
    print(f"\none statistics step costs {cost:.2f} ms extra (median of rounds, paired with bare) = "
          f"{100 * cost / base:.1f}% of a step; at the default interval (100) that is "
          f"{100 * cost / base / 100:.2f}% of step time")
    default = [100 * (d / b - 1) for d, b in zip(results["default"], results["bare"], strict=True)]
    print(f"whole default monitor vs bare, paired per round: {', '.join(f'{x:+.1f}%' for x in default)}")


if __name__ == "__main__":
    main()

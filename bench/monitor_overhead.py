"""What monitoring costs per training step, on the default preset's model shape.

The machine is shared and drifts, so costs are measured *within* one training, step against
neighbouring step, never run against run:

  statistics   stats_interval=2: every even step is a statistics step. Cost of one statistics
               step = median duration of statistics steps - median duration of the plain steps
               between them. At the default interval (100) the overhead is that cost / 100 / step.
  histograms   the same with histogram_interval=2 (statistics off).
  sinks        log_interval=10: the step after a logging step carries metrics.jsonl, TensorBoard
               and the control poll. Cost = its median excess over plain steps, / 10 per step.
  idle hooks   forward+backward+optimizer step with the statistics hooks attached but idle
               (no statistics step due) vs detached, alternated 40 times (median difference).

Step durations come from an optimizer post-step hook (time between consecutive steps).
Usage:

    .venv/bin/python bench/monitor_overhead.py [--steps 80] [--rounds 2] [--threads N]
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

from lmforge.config.load import dump_config, load_config
from lmforge.models.registry import build_model
from lmforge.monitor import build_callbacks
from lmforge.monitor.stats import TrainingStats
from lmforge.rundir import RunDir, atomic_write_text
from lmforge.train.loop import Callback
from lmforge.train.stage import build_trainer

LOG = 10


class StepTimes(Callback):
    """perf_counter after every optimizer step (registered last, so after the statistics hook)."""

    def __init__(self) -> None:
        self.t: dict[int, float] = {}

    def on_train_start(self, trainer) -> None:
        def mark(opt, args, kwargs) -> None:
            self.t[trainer.step + 1] = time.perf_counter()
        trainer.optimizer.register_step_post_hook(mark)

    def durations(self) -> dict[int, float]:
        return {s: 1000 * (self.t[s] - self.t[s - 1]) for s in self.t if s - 1 in self.t}


def make_run(root: Path, vocab: int = 2048) -> RunDir:
    run = RunDir(root)
    run.tokens.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 400_000), ("val", 20_000)):
        rng.integers(0, vocab, n).astype(np.uint16).tofile(run.token_file(split))
    meta = {"dtype": "uint16", "vocab_size": vocab,
            "splits": {"train": {"tokens": 400_000}, "val": {"tokens": 20_000}}}
    (run.tokens / "meta.json").write_text(json.dumps(meta))
    return run


def train_durations(run: RunDir, steps: int, threads: int, extra: list[str]) -> dict[int, float]:
    overrides = [f"train.steps={steps}", f"train.log_interval={LOG}", "train.eval_interval=100000",
                 "train.checkpoint_interval=100000", f"train.threads={threads}", "monitor.console=none",
                 "monitor.peak_flops=1e11", *extra]
    cfg = load_config(None, "default", overrides)
    atomic_write_text(run.config, dump_config(cfg))
    clock = StepTimes()
    trainer = build_trainer(run, cfg, resume=False, show_progress=False, callbacks=lambda *args: build_callbacks(*args) + [clock])
    trainer.fit()
    return clock.durations()


def split_cost(d: dict[int, float], warmup: int) -> tuple[float, float, float]:
    """(median plain step, median extra of even steps, median extra of steps after a log step)."""
    after_log = [v for s, v in d.items() if s > warmup and (s - 1) % LOG == 0]
    plain = [v for s, v in d.items() if s > warmup and s % 2 == 1 and (s - 1) % LOG]
    even = [v for s, v in d.items() if s > warmup and s % 2 == 0]
    base = statistics.median(plain)
    return base, statistics.median(even) - base, statistics.median(after_log) - base


def idle_hook_cost(threads: int, pairs: int = 40) -> tuple[float, float]:
    """(median fwd+bwd ms without hooks, median extra ms with idle statistics hooks)."""
    cfg = load_config(None, "default", [f"train.threads={threads}"])
    model = build_model(cfg.model, 2048)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, 2048, (cfg.train.batch_size, cfg.model.block_size))

    def fwd_bwd() -> float:
        t = time.perf_counter()
        model(x).float().logsumexp(-1).mean().backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        return 1000 * (time.perf_counter() - t)

    fwd_bwd()
    bare, hooked = [], []
    for _ in range(pairs):
        bare.append(fwd_bwd())
        stats = TrainingStats(interval=10**9)  # attached, never due: the idle path
        stats.attach(model, opt, lambda: 0)
        hooked.append(fwd_bwd())
        stats.detach()
    return statistics.median(bare), statistics.median([h - b for h, b in zip(hooked, bare, strict=True)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = every core")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads; python "
          f"{platform.python_version()}, torch {torch.__version__}")
    print(f"shape: default preset (4 layers x 4 heads x 128, context 128, batch 16, vocab 2048); "
          f"{args.steps} steps per training, first {args.warmup} ignored; {args.rounds} rounds")
    rows: dict[str, list[float]] = {"step": [], "stats": [], "sinks": [], "hist": []}
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run")
        for r in range(args.rounds):
            base, stats_cost, sink_cost = split_cost(
                train_durations(run, args.steps, args.threads, ["monitor.stats_interval=2"]), args.warmup)
            hbase, hist_cost, _ = split_cost(
                train_durations(run, args.steps, args.threads,
                                ["monitor.stats_interval=0", "monitor.histogram_interval=2"]), args.warmup)
            rows["step"].append(base)
            rows["stats"].append(stats_cost)
            rows["sinks"].append(sink_cost)
            rows["hist"].append(hist_cost)
            print(f"  round {r + 1}: plain step {base:.1f} ms; statistics step +{stats_cost:.1f} ms; "
                  f"after a log step +{sink_cost:.1f} ms; histogram step +{hist_cost:.1f} ms "
                  f"(plain {hbase:.1f})", file=sys.stderr)
    fb, idle = idle_hook_cost(args.threads)
    step = statistics.median(rows["step"])
    stats_ms, sink_ms, hist_ms = (statistics.median(rows[k]) for k in ("stats", "sinks", "hist"))
    print("\n| what | cost when it happens | interval | share of step time |")
    print("|---|---|---|---|")
    print(f"| plain training step | {step:.1f} ms | every step | - |")
    print(f"| training statistics | +{stats_ms:.1f} ms ({100 * stats_ms / step:.0f}% of a step) | 100 (default) "
          f"| {100 * stats_ms / step / 100:.2f}% |")
    print(f"| metrics.jsonl + TensorBoard + control poll | +{sink_ms:.1f} ms | {LOG} (log interval) "
          f"| {100 * sink_ms / step / LOG:.2f}% |")
    print(f"| weight+gradient histograms (off by default) | +{hist_ms:.1f} ms | 100 if turned on "
          f"| {100 * hist_ms / step / 100:.2f}% |")
    print(f"| idle statistics hooks (fwd+bwd+step {fb:.1f} ms) | +{idle:.3f} ms | every step | "
          f"{100 * idle / step:.2f}% |")
    total = stats_ms / 100 + sink_ms / LOG + max(0.0, idle)
    shares = [100 * c / b for c, b in zip(rows["stats"], rows["step"], strict=True)]
    print(f"\ndefault monitoring in total: {100 * total / step:.2f}% of step time; one statistics step per "
          f"round: {', '.join(f'{v:.1f}%' for v in shares)} of a plain step (median {statistics.median(shares):.1f}%: "
          f"{statistics.median(shares) / 100:.2f}% of step time at interval 100)")


if __name__ == "__main__":
    main()

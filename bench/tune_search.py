"""Grid vs random vs TPE vs TPE with Hyperband pruning, at the full grid's compute, over seeds:
how much compute each search needs to reach the best validation loss the full grid finds.

Runs `lmforge compare search` (lmforge/compare/search.py: 4 keys - LR, width, warmup, weight
decay - 36 grid points, 60-step trials of a char-level 2-layer GPT on the built-in corpus, with
lmforge's default sampler and pruner settings) and writes its table (compute to reach the grid's
best, exactly and within the grid's seed-to-seed noise), curves and figure, how well the loss at
each evaluation ranks the grid's trials (what a pruner relies on), the CPU line and versions, to
bench/results/.

Usage (from the repository root):

    .venv/bin/python bench/tune_search.py [--seeds 3] [--first-seed 0] [--methods grid,tpe+hyperband]
                                          [--name tune_search] [--out runs/bench-tune-search]
                                          (--methods also takes SAMPLER+PRUNER pairs, e.g. gp+hyperband)
                                          [--set tune.startup_trials=10 --set tune.min_steps=15 ...]
    .venv/bin/python bench/tune_search.py --pool NAME,NAME,...   (saved results, seeds pooled: how sure
                                          the median is, with a bootstrap interval; nothing is trained)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
from pathlib import Path

import optuna
import torch

from lmforge.compare.search import METHODS, run_compare_search, search_config, summary_rows, table
from lmforge.config.schema import TuneConfig
from lmforge.console import set_quiet
from lmforge.rundir import RunDir
from lmforge.tune.samplers import min_steps

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_line() -> str:
    """The CPU model and its vector flags, as /proc/cpuinfo gives them."""
    model, flags = platform.processor(), []
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
                break
    return f"{model}; flags {' '.join(flags)}"


def fidelity(record: dict) -> dict[int, dict[str, float]]:
    """How well the validation loss at each evaluation ranks the grid's trials as their final loss
    does: Spearman's rank correlation over each seed's completed grid trials (median, min, max over
    seeds), and where the grid's best trial ranked at that step (median). What a pruner that stops
    trials at that step relies on."""
    from scipy.stats import spearmanr

    per_step: dict[int, list[float]] = {}
    best_rank: dict[int, list[int]] = {}
    counts = []
    for curve in record["curves"]["grid"].values():
        done = [p for p in curve if p["outcome"] == "complete" and p.get("intermediate")]
        if len(done) < 3:
            continue
        final = [p["value"] for p in done]
        counts.append(len(done))
        winner = min(done, key=lambda p: p["value"])
        for step in sorted({int(k) for p in done for k in p["intermediate"]}):
            if step >= record["steps_per_trial"]:
                continue
            early = [p["intermediate"].get(step, p["intermediate"].get(str(step))) for p in done]
            per_step.setdefault(step, []).append(float(spearmanr(early, final)[0]))
            order = sorted(range(len(done)), key=lambda i: early[i])
            best_rank.setdefault(step, []).append(order.index(done.index(winner)) + 1)
    return {step: {"rho_median": statistics.median(v), "rho_min": min(v), "rho_max": max(v),
                   "best_rank_median": statistics.median(best_rank[step]),
                   "trials": statistics.median(counts)}
            for step, v in per_step.items()}


def pool(names: list[str], method: str = "tpe+hyperband", goal: float = 1 / 3) -> None:
    """Pool the seeds of saved results and say how sure the exact-reach median is: a percentile
    bootstrap interval over seeds, and the share of seeds at or under the goal with Wilson's
    interval (the median is at or under the goal only if at least half the seeds are)."""
    import numpy as np

    share = np.array([f for name in names
                      for row in summary_rows(json.loads((RESULTS / f"{name}.json").read_text()))
                      if row["method"] == method for f in row["reach_fraction"]])
    n, hits = len(share), int((share <= goal).sum())
    medians = np.median(np.random.default_rng(0).choice(share, size=(10_000, n)), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    z, p = 1.96, hits / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    print(f"{method} over {n} seeds ({', '.join(names)}): median share of the grid's compute to reach the "
          f"grid's best {np.median(share):.3f}, 95% bootstrap interval {low:.3f}–{high:.3f}; missed in "
          f"{int(np.isinf(share).sum())}; at or under {goal:.3f} in {hits} of {n} ({p:.2f}, Wilson 95% "
          f"{centre - half:.2f}–{centre + half:.2f}); bootstrap medians at or under it: {(medians <= goal).mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="grid is the yardstick: keep it; SAMPLER+PRUNER names another pairing, e.g. gp+hyperband")
    parser.add_argument("--name", default="tune_search", help="bench/results/NAME.json and NAME.png")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-tune-search"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override, e.g. tune.startup_trials=10 (repeatable): other settings")
    parser.add_argument("--pool", help="NAME,NAME,...: pool saved results' seeds instead of running searches")
    args = parser.parse_args()
    if args.pool:
        pool(args.pool.split(","))
        return
    set_quiet(True)  # one line per search, not per trial
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    methods = args.methods.split(",")
    for name in methods:  # a pairing `compare search` does not offer, measured here only
        if name not in METHODS and "+" in name:
            sampler, pruner = name.split("+", 1)
            TuneConfig(sampler=sampler, pruner=pruner)  # refuses a name the tune section does not know
            METHODS[name] = (sampler, pruner)
    base = search_config(None, args.set)
    record = run_compare_search(RunDir(args.out), base, seeds, methods)
    record["settings"] = {"overrides": args.set, "startup_trials": base.tune.startup_trials,
                          "first_rung_steps": min_steps(base)}
    if "grid" in record["curves"]:
        record["fidelity"] = fidelity(record)
    record["cpu"] = cpu_line()
    record["versions"] = {"optuna": optuna.__version__, "torch": torch.__version__,
                          "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    shutil.copyfile(args.out / "compare" / "search.png", RESULTS / f"{args.name}.png")
    print(table(record))
    for step, f in record.get("fidelity", {}).items():
        print(f"grid trials at step {step}: Spearman rho with the final loss {f['rho_median']:.2f} "
              f"({f['rho_min']:.2f}–{f['rho_max']:.2f}); the grid's best ranked {f['best_rank_median']:.0f} "
              f"of {f['trials']:.0f} there (median over seeds)")
    print(f"cpu: {record['cpu']}; {record['versions']}; wall {record['wall_s']:.0f} s")


if __name__ == "__main__":
    main()

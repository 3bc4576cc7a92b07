"""`lmforge compare search`: grid vs random vs TPE vs TPE with Hyperband pruning on one search
space and one compute budget, over the built-in corpus, several seeds each (the course's table 7
and figure 7, measured).

Compute is counted in training steps (every trial trains the same batch, so steps are tokens):
robust on a shared machine, where seconds are not. The budget is what the full grid spends; the
other searches run trials until they have spent as much. For each seed, the table reports the
best validation loss each search reached and the compute it needed to reach the full grid's best:
exactly, and within the grid's seed-to-seed noise (the grid's best is itself one noisy run).
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from lmforge.compare.models import environment
from lmforge.config.load import load_config
from lmforge.config.schema import Config, TuneConfig
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text
from lmforge.tune.space import grid_size
from lmforge.tune.storage import outcome
from lmforge.tune.study import prepare, run_budgeted

# a character-level tokenizer and a small GPT: each trial is a few seconds on one CPU thread
BASE = ["tokenizer.kind=char", "tokenizer.vocab_size=256", "model.n_layer=2", "model.n_head=2",
        "model.block_size=32", "train.batch_size=8", "train.steps=60", "train.eval_interval=15",
        "train.eval_batches=4", "train.log_interval=5", "train.checkpoint_interval=100000",
        "train.keep_checkpoints=1", "train.threads=1", "train.min_lr=1.0e-4", "monitor.console=none"]
# LR, width, warmup and weight decay: 3 x 3 x 2 x 2 = 36 grid points
SPACE: dict[str, dict[str, Any]] = {
    "train.lr": {"float": [1.0e-3, 1.0e-2], "log": True, "grid": 3},
    "model.n_embd": {"int": [16, 48], "step": 16},
    "train.warmup_steps": {"int": [0, 20], "step": 20},
    "train.weight_decay": {"float": [0.0, 0.2], "grid": 2},
}
METHODS = {"grid": ("grid", "none"), "random": ("random", "none"), "tpe": ("tpe", "none"),
           "tpe+hyperband": ("tpe", "hyperband")}


def search_config(config: Path | None, overrides: list[str], space: dict[str, Any] | None = None) -> Config:
    """The benchmark's base config: `BASE`, then `overrides`; its tune section keeps lmforge's
    defaults (what users get) or the `tune.*` overrides given, with the benchmark's space."""
    cfg = load_config(config, None if config else "default", BASE + overrides)
    cfg.tune = TuneConfig.model_validate({**cfg.tune.model_dump(exclude={"space"}), "space": space or SPACE})
    return cfg


def method_config(base: Config, method: str, seed: int) -> Config:
    """The base config for one search: its sampler and pruner, seeded (sampler and training)."""
    sampler, pruner = METHODS[method]
    cfg = base.model_copy(deep=True)
    cfg.tune = cfg.tune.model_copy(update={"sampler": sampler, "pruner": pruner, "seed": seed})
    cfg.train.seed = seed
    return cfg


def trace(study: optuna.Study) -> list[dict[str, Any]]:
    """Each trial in order with the compute spent so far and the best completed value so far."""
    spent, best, out = 0, math.inf, []
    for t in sorted(study.trials, key=lambda t: t.number):
        spent += int(t.user_attrs.get("steps", 0))
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            best = min(best, t.value)
        out.append({"trial": t.number, "outcome": outcome(t), "steps": int(t.user_attrs.get("steps", 0)),
                    "spent": spent, "value": t.value, "best": best if math.isfinite(best) else None,
                    "params": t.params, "intermediate": {int(k): v for k, v in t.intermediate_values.items()}})
    return out


def steps_to_reach(curve: list[dict[str, Any]], target: float) -> int | None:
    """Compute spent when the best completed value first reached `target`; None if it never did."""
    return next((p["spent"] for p in curve if p["best"] is not None and p["best"] <= target + 1e-12), None)


def run_compare_search(run: RunDir, base: Config, seeds: list[int], methods: list[str]) -> dict[str, Any]:
    """Every method at every seed, on the grid's compute; the curves and the reach table."""
    prepare(run, base)
    per_trial = base.train.steps
    budget = grid_size(base.tune.space) * per_trial
    results: dict[str, dict[int, list[dict[str, Any]]]] = {m: {} for m in methods}
    started = time.time()
    for seed in seeds:
        for method in methods:
            t0 = time.time()
            study = run_budgeted(run, method_config(base, method, seed), budget)
            results[method][seed] = trace(study)
            curve = results[method][seed]
            print(f"  seed {seed} {method}: {len(curve)} trials, {curve[-1]['spent']:,} steps, best "
                  f"{curve[-1]['best']:.4f} ({time.time() - t0:.0f} s)", flush=True)
    record = {"space": base.tune.space and {k: v.model_dump(mode="json") for k, v in base.tune.space.items()},
              "grid_points": grid_size(base.tune.space), "steps_per_trial": per_trial, "budget_steps": budget,
              "seeds": seeds, "methods": methods, "curves": results, "wall_s": time.time() - started,
              "environment": environment()}
    record["rows"] = summary_rows(record)
    out = run.root / "compare"
    atomic_write_json(out / "search.json", record)
    atomic_write_text(out / "search.md", table(record) + "\n")
    figure(record, out / "search.png")
    return record


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.4f} ({min(values):.4f}–{max(values):.4f})"


def grid_noise(record: dict[str, Any]) -> float | None:
    """The seed-to-seed standard deviation of the full grid's best value: how far the yardstick
    itself moves when only the seed (training noise and the grid's order) changes. None with
    fewer than two seeds."""
    bests = [c[-1]["best"] for c in record.get("curves", {}).get("grid", {}).values() if c[-1]["best"] is not None]
    return statistics.stdev(bests) if len(bests) >= 2 else None


def summary_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method: trials, best value, and compute to reach the grid's best (per seed): exactly,
    and within the grid's seed-to-seed noise (the grid's best is one noisy run, the minimum of
    many, so a search that comes within that noise of it found an equally good setting as far
    as this benchmark can tell)."""
    grid_best = {s: c[-1]["best"] for s, c in record.get("curves", {}).get("grid", {}).items()}
    noise = grid_noise(record)

    def fractions(curves: dict[Any, list[dict[str, Any]]], tolerance: float) -> tuple[list[int | None], list[float]]:
        reach = [steps_to_reach(c, grid_best[s] + tolerance) for s, c in curves.items() if s in grid_best]
        return reach, [r / record["budget_steps"] if r is not None else math.inf for r in reach]

    rows = []
    for method, curves in record["curves"].items():
        reach, share = fractions(curves, 0.0)
        row = {"method": method, "trials": [len(c) for c in curves.values()],
               "best": [c[-1]["best"] for c in curves.values()], "reach_steps": reach, "reach_fraction": share,
               "pruned": [sum(p["outcome"] == "pruned" for p in c) for c in curves.values()]}
        if noise is not None:
            row["reach_steps_noise"], row["reach_fraction_noise"] = fractions(curves, noise)
        rows.append(row)
    return rows


def _reach(steps: list[int | None], fractions: list[float]) -> str:
    """Median share of the grid's compute (min–max over the seeds that reached), and how many missed."""
    reached = [f for f in fractions if math.isfinite(f)]
    share = statistics.median(fractions)
    text = "not reached" if math.isinf(share) else f"{share:.2f}"
    if reached:
        text += f" ({min(reached):.2f}–{max(reached):.2f})"
    missed = len(steps) - len(reached)
    return text + (f", missed in {missed} of {len(steps)}" if missed else "")


COLUMNS = ["search", "trials (median)", "pruned (median)", "best val loss: median (min–max)",
           "share of the grid's compute to reach the grid's best: median (min–max)",
           "... to come within the grid's seed-to-seed noise: median (min–max)"]


def heading(record: dict[str, Any]) -> str:
    text = (f"search space: {record['grid_points']} grid points, {record['steps_per_trial']} steps per full "
            f"trial; budget {record['budget_steps']:,} steps per search (the full grid); seeds {record['seeds']}")
    noise = grid_noise(record)
    if noise is not None:
        text += f"; the grid's seed-to-seed noise (the standard deviation of its best over the seeds) {noise:.4f}"
    return text


def rows(record: dict[str, Any]) -> list[list[str]]:
    """One row per search: trials, pruned, best value and the compute it took to reach the grid's
    best, exactly and within its seed-to-seed noise ("-" with one seed: no noise to measure)."""
    return [[r["method"], f"{statistics.median(r['trials']):.0f}", f"{statistics.median(r['pruned']):.0f}",
             _spread([b for b in r["best"] if b is not None]), _reach(r["reach_steps"], r["reach_fraction"]),
             _reach(r["reach_steps_noise"], r["reach_fraction_noise"]) if "reach_fraction_noise" in r else "-"]
            for r in record["rows"]]


def table(record: dict[str, Any]) -> str:
    from lmforge.compare.output import markdown

    return f"{heading(record)}\n\n{markdown(COLUMNS, rows(record))}".rstrip("\n")


def figure(record: dict[str, Any], path: Path) -> None:
    """Best validation loss against compute spent: the median over seeds, with the min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    budget = record["budget_steps"]
    xs = np.linspace(0, budget, 200)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for method, curves in record["curves"].items():
        ys = []
        for curve in curves.values():
            steps = [p["spent"] for p in curve]
            best = [p["best"] if p["best"] is not None else np.nan for p in curve]
            idx = np.searchsorted(steps, xs, side="right") - 1
            ys.append(np.where(idx >= 0, np.take(best, np.clip(idx, 0, None)), np.nan))
        ys_arr = np.array(ys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # before a search's first completed trial
            med, low, high = (np.nanmedian(ys_arr, axis=0), np.nanmin(ys_arr, axis=0), np.nanmax(ys_arr, axis=0))
        line, = ax.plot(xs, med, label=method)
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("compute spent (training steps, all trials)")
    ax.set_ylabel("best validation loss so far")
    ax.set_title(f"search on {record['grid_points']} grid points, {len(record['seeds'])} seeds (median, min–max)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

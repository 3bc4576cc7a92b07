"""compare search: searches at equal compute, traced as best value against steps spent."""

from __future__ import annotations

import math
from pathlib import Path

from lmforge.compare.search import (
    SPACE,
    figure,
    method_config,
    search_config,
    steps_to_reach,
    summary_rows,
    table,
    trace,
)
from lmforge.config.schema import TuneConfig
from lmforge.tune.space import grid_size
from lmforge.tune.study import run_budgeted
from tests.helpers.tune import tune_config, tune_run


def test_searches_spend_the_grids_budget_and_are_compared_to_its_best(tmp_path: Path):
    space = {"train.lr": {"float": [1e-3, 3e-2], "log": True, "grid": 2}, "model.n_embd": {"int": [16, 32], "step": 16}}
    base = tune_config(space, "train.steps=20", "train.eval_interval=5", startup_trials=2)
    run = tune_run(tmp_path / "run", base)
    budget = grid_size(base.tune.space) * base.train.steps
    curves = {m: {0: trace(run_budgeted(run, method_config(base, m, 0), budget))}
              for m in ("grid", "tpe+hyperband")}
    grid, tpe = curves["grid"][0], curves["tpe+hyperband"][0]
    assert len(grid) == 4 and grid[-1]["spent"] == budget  # the whole grid, nothing more
    assert budget <= tpe[-1]["spent"] < budget + base.train.steps  # stops once the budget is spent
    assert any(p["outcome"] == "pruned" and p["steps"] < 20 for p in tpe)  # pruned trials cost less
    assert [p["best"] for p in grid] == sorted([p["best"] for p in grid], reverse=True)
    target = grid[-1]["best"]
    reach = steps_to_reach(grid, target)
    assert reach == next(p["spent"] for p in grid if p["value"] == target)
    assert steps_to_reach(grid, target - 1.0) is None
    record = {"curves": curves, "budget_steps": budget, "grid_points": 4, "steps_per_trial": 20, "seeds": [0]}
    record["rows"] = summary_rows(record)
    assert record["rows"][0]["reach_fraction"] == [reach / budget]
    assert "| grid | 4 |" in table(record)
    figure(record, tmp_path / "search.png")
    assert (tmp_path / "search.png").stat().st_size > 1000


def curve(bests: list[float], steps: int = 10) -> list[dict]:
    """A search's trace from the best value after each trial (every trial `steps` steps)."""
    return [{"spent": steps * (i + 1), "best": b, "outcome": "complete"} for i, b in enumerate(bests)]


def test_reach_within_the_grids_seed_to_seed_noise():
    # the grid's best over two seeds: 3.0 and 3.2, so its seed-to-seed standard deviation is 0.1414
    record = {"curves": {"grid": {0: curve([3.5, 3.0]), 1: curve([3.3, 3.2])},
                         "tpe": {0: curve([3.1, 3.1]), 1: curve([3.3, 3.19])}},
              "budget_steps": 20, "grid_points": 2, "steps_per_trial": 10, "seeds": [0, 1]}
    record["rows"] = summary_rows(record)
    grid, tpe = record["rows"]
    assert tpe["reach_fraction"] == [math.inf, 1.0]  # 3.1 never reaches 3.0 exactly; 3.19 <= 3.2
    assert tpe["reach_fraction_noise"] == [0.5, 0.5]  # 3.1 <= 3.0 + 0.1414 and 3.3 <= 3.2 + 0.1414
    assert grid["reach_fraction_noise"] == [1.0, 0.5]  # 3.3 is within the noise of 3.2, 3.5 not of 3.0
    text = table(record)
    assert "seed-to-seed noise (the standard deviation of its best over the seeds) 0.1414" in text
    assert "| tpe | 2 | 0 | 3.1450 (3.1000–3.1900) | not reached (1.00–1.00), missed in 1 of 2 | 0.50 (0.50–0.50) |" in text


def test_the_benchmark_searches_with_lmforges_defaults_unless_told_otherwise():
    assert search_config(None, []).tune.startup_trials == TuneConfig().startup_trials
    cfg = search_config(None, ["tune.startup_trials=10", "tune.min_steps=15"])
    assert (cfg.tune.startup_trials, cfg.tune.min_steps) == (10, 15)
    assert set(cfg.tune.space) == set(SPACE)  # the benchmark's space, whatever else changes

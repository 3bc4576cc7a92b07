"""`lmforge compare continual`: domain A, then domain B, by every continual-training method
(finetune/continual.py) from the same checkpoint of A: forgetting of A and gain on B, with the
retraining cost, as the course's table 13 and figure 13 in the common output form
(compare/output.py)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.compare.output import markdown, pyplot, save_figure, write_table
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.continual import METHODS, a_run, continue_training, prepare_b
from lmforge.rundir import RunDir
from lmforge.tokens.store import load_tokens

NAME = "continual"
COLUMNS = ["method", "A val before", "A val after", "forgetting (A up)", "B val before", "B val after",
           "gain (B down)", "train s", "tokens"]


def run_continual(base: Base, out: RunDir, overrides: list[str], methods: list[str], replay_share: float,
                  strength: dict[str, float], fisher_windows: int) -> dict[str, Any]:
    """Every method from the same start; the table, figure and cells in `out` (compare/output.py)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise LmforgeError(f"unknown continual method(s) {unknown}", f"choose from: {', '.join(METHODS)}")
    cfg, b_run = prepare_b(base, out.root / "B", overrides)
    a = a_run(base)
    a_train = load_tokens(a.tokens, "train")
    val = {"A": load_tokens(a.tokens, "val"), "B": load_tokens(b_run.tokens, "val")}
    started = time.time()
    results = []
    for method in methods:
        console.print(f"continual: {method}, {cfg.train.steps} steps on B")
        res = continue_training(method, base, b_run, cfg, a_train, val, replay_share, strength.get(method, 0.0),
                                fisher_windows, out.root / method)
        console.print(f"  A {res['before']['A']:.3f} -> {res['after']['A']:.3f}, "
                      f"B {res['before']['B']:.3f} -> {res['after']['B']:.3f}")
        results.append(res)
    record = {"base": base.lineage(), "b_data": cfg.section("data"), "steps": cfg.train.steps,
              "lr": cfg.train.lr, "warmup_steps": cfg.train.warmup_steps, "wall_s": round(time.time() - started, 1),
              "results": results}
    rows = [[r["method"], f"{r['before']['A']:.3f}", f"{r['after']['A']:.3f}", f"{r['forgetting']:+.3f}",
             f"{r['before']['B']:.3f}", f"{r['after']['B']:.3f}", f"{r['gain']:+.3f}", f"{r['seconds']:.0f}",
             f"{r['tokens']:,}"] for r in results]
    cells = [{"arm": r["method"], "seed": cfg.train.seed, "config": cfg.model_dump(mode="json"),
              "command": shlex.join(["lmforge", "compare", "continual", str(base.path), *overrides,
                                     "--methods", r["method"], "--replay", str(replay_share),
                                     "--ewc", str(strength.get("ewc", 0.0)), "--l2", str(strength.get("l2", 0.0)),
                                     "--fisher-windows", str(fisher_windows), "-o", str(out.root)]),
              "values": r} for r in results]
    notes = [(f"every method starts from the same checkpoint of A and trains {cfg.train.steps} steps on B; "
             "losses in nats per token on each domain's validation windows (the same windows for every method); "
             "replay's tokens include A's")]
    write_table(out.root, NAME, "retraining: continual training A then B, forgetting and gain", COLUMNS, rows, cells,
                lambda p: continual_figure(results, p), notes, record)
    return {"table": markdown(COLUMNS, rows), **record}


def continual_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Forgetting and gain per method, side by side (the course's figure 13)."""
    names = [r["method"] for r in results]
    xs = np.arange(len(names))
    fig, ax = pyplot().subplots(figsize=(6, 3.5), dpi=120)
    ax.bar(xs - 0.2, [r["forgetting"] for r in results], 0.4, label="forgetting: A's val loss rise")
    ax.bar(xs + 0.2, [r["gain"] for r in results], 0.4, label="gain: B's val loss drop")
    ax.set_xticks(xs, names)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("nats per token")
    ax.set_title("Continual training A -> B")
    ax.legend(fontsize=8)
    save_figure(fig, path)

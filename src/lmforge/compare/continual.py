"""`lmforge compare continual`: domain A, then domain B, by every continual-training method
(finetune/continual.py) from the same checkpoint of A: forgetting of A and gain on B, with the
retraining cost, as a table and a figure (the seed's table 13 and figure 13)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.finetune.continual import METHODS, a_run, continue_training, prepare_b
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text
from lmforge.tokens.store import load_tokens


def run_continual(base: Base, out: RunDir, overrides: list[str], methods: list[str], replay_share: float,
                  strength: dict[str, float], fisher_windows: int) -> dict[str, Any]:
    """Every method from the same start; results, table and figure in `out`."""
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
    atomic_write_json(out.root / "continual.json", record)
    table = continual_table(results)
    atomic_write_text(out.root / "continual.md", table + "\n")
    continual_figure(results, out.root / "continual.png")
    return {"table": table, **record}


def continual_table(results: list[dict[str, Any]]) -> str:
    lines = [("| method | A val before | A val after | forgetting (A up) | B val before | B val after | gain (B down) "
             "| train s | tokens |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['method']} | {r['before']['A']:.3f} | {r['after']['A']:.3f} | {r['forgetting']:+.3f} | "
                     f"{r['before']['B']:.3f} | {r['after']['B']:.3f} | {r['gain']:+.3f} | {r['seconds']:.0f} | "
                     f"{r['tokens']:,} |")
    return "\n".join(lines)


def continual_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Forgetting and gain per method, side by side (the seed's figure 13)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in results]
    xs = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(xs - 0.2, [r["forgetting"] for r in results], 0.4, label="forgetting: A's val loss rise")
    ax.bar(xs + 0.2, [r["gain"] for r in results], 0.4, label="gain: B's val loss drop")
    ax.set_xticks(xs, names)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("nats per token")
    ax.set_title("Continual training A -> B")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
